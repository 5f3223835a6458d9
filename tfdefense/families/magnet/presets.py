"""MagNet's zoo entries and the figures its papers report, as data (`tfdefense.zoo.presets`)."""

TEMPLATE = {
    "name": "magnet_{short}",
    "family": "magnet",
    "config": {"latent_dim": 20, "filters": 64, "noise_volume": 0.1},
    "inference": {"classifier": "classifier_a_{short}"},
    "path": "{name}",
    "train": {"epochs": 60, "batch_size": 100, "learning_rate": 2e-4, "seed": 0, "dtype_policy": "mixed_bfloat16"},
    "metadata": {
        "dataset": "{dataset}",
        "description": "MagNet on {dataset}: MSE and L1 reconstruction detectors (0.1% false "
                       "positives) and an autoencoder reformer (D=20) in front of classifier A.",
        "reported": "{reported}",
        "reference": "Meng & Chen 2017; AE-GAN+rs (anon.) Appendix B, Tables 1, 4, 6, 8",
    },
}

# AE-GAN+rs (anon.) Tables 1 and 8 (D=20), classifier A, eps 0.3.
VARIANTS = (
    {"dataset": "mnist", "short": "mnist",
     "reported": {"gray_box": {"fgsm_0.3": 0.561, "pgd_0.3": 0.673, "cw_l2": 0.881},
                  "white_box": {"fgsm_0.3": 0.298, "pgd_0.3": 0.012, "cw_l2": 0.013},
                  "black_box": {"fgsm_0.3": 0.464}}},
    {"dataset": "fashion_mnist", "short": "fmnist",
     "reported": {"white_box": {"fgsm_0.3": 0.199, "pgd_0.3": 0.071, "cw_l2": 0.084}}},
)
