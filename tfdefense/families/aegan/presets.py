"""AE-GAN+rs's zoo entries and the figures its paper reports, as data (`tfdefense.zoo.presets`)."""

MODEL_DEFAULTS = {"latent_dim": 128, "filters": 64, "noise_eta": 0.3, "adversarial": True,
                  "adversarial_weight": 1.0, "noise": "gaussian"}

TEMPLATE = {
    "name": "aegan_{short}",
    "family": "aegan",
    "config": MODEL_DEFAULTS,
    "inference": {"classifier": "classifier_a_{short}", "steps": 15},
    "path": "{name}",
    "train": {"epochs": 60, "batch_size": 100, "learning_rate": 2e-4, "seed": 0, "dtype_policy": "mixed_bfloat16"},
    "metadata": {
        "dataset": "{dataset}",
        "description": "AE-GAN+rs on {dataset}: detector, encoder-assisted latent search (L=15) and classifier A.",
        "reported": "{reported}",
        "reference": "AE-GAN+rs (anon.): Table 6 architectures, Table 4 schedule, Algorithms 1-2, Tables 1-3",
    },
}

VARIANTS = (
    {"dataset": "mnist", "short": "mnist",
     "reported": {"clean_accuracy": 0.98, "gray_box": {"fgsm_0.3": 0.882, "pgd_0.3": 0.910, "cw_l2": 0.915},
                  "white_box": {"fgsm_0.3": 0.984, "pgd_0.3": 0.982, "cw_l2": 0.979},
                  "black_box": {"fgsm_0.3": 0.935}}},  # Table 1, substitute B (0.933 with C)
    {"dataset": "fashion_mnist", "short": "fmnist",
     "reported": {"white_box": {"fgsm_0.3": 0.804, "pgd_0.3": 0.816, "cw_l2": 0.767}}},
)
