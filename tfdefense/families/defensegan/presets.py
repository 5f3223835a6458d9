"""Defense-GAN's zoo entries (and the robust-manifold classifiers trained on its generators) with the
figures the papers report, as data (`tfdefense.zoo.presets`)."""

TEMPLATE = {
    "name": "defensegan_{short}",
    "family": "defensegan",
    "config": {"latent_dim": 128, "filters": 64, "critic_steps": 5, "gp_weight": 10.0},
    "inference": {"classifier": "classifier_a_{short}"},
    "path": "{name}",
    "train": {"epochs": 20, "batch_size": 64, "learning_rate": 1e-4, "seed": 0, "dtype_policy": "mixed_bfloat16"},
    "metadata": {"dataset": "{dataset}",
                 "description": "Defense-GAN on {dataset}: WGAN-GP generator, R=10 x L=200 latent "
                                "search, INC rejection, classifier A.",
                 "reported": "{reported}",
                 "reference": "AE-GAN+rs (anon.) Tables 1-2 (Defense-GAN columns); Ilyas et al. 2017"},
}

# Table 1 (R=10, L=200) and Table 2's R=10, L=60 column (FGSM eps 0.3) of AE-GAN+rs (anon.).
VARIANTS = (
    {"dataset": "mnist", "short": "mnist",
     "reported": {"white_box": {"fgsm_0.3": 0.981, "pgd_0.3": 0.989, "cw_l2": 0.981},
                  "gray_box": {"fgsm_0.3": 0.880, "pgd_0.3": 0.913, "cw_l2": 0.918},
                  "black_box": {"fgsm_0.3": 0.928},  # AE-GAN+rs (anon.) Table 1, substitute B
                  "table2_r10_l60": {"clean": 0.967, "white_fgsm_0.3": 0.964, "gray_fgsm_0.3": 0.863}}},
    {"dataset": "fashion_mnist", "short": "fmnist",
     "reported": {"white_box": {"fgsm_0.3": 0.814, "pgd_0.3": 0.852, "cw_l2": 0.810},
                  "table2_r10_l60": {"clean": 0.788, "white_fgsm_0.3": 0.787, "gray_fgsm_0.3": 0.432}}},
)

# Classifier A fine-tuned against the overpowered min-max attack on a Defense-GAN generator.
MANIFOLD_TEMPLATE = {
    "name": "classifier_a_{short}_manifold",
    "family": "manifold_classifier",
    "config": {"arch": "a", "init": "classifier_a_{short}", "generator": "defensegan_{short}", "mu": 0.5,
               "attack_steps": 20, "pairs": 32},
    "path": "{name}",
    "train": {"epochs": 2, "batch_size": 100, "learning_rate": 1e-4, "seed": 0},
    "metadata": {"dataset": "{dataset}",
                 "description": "Classifier A on {dataset} fine-tuned against the overpowered min-max attack "
                                "on the defensegan_{short} generator (robust manifold defense, Eq. 10).",
                 "reported": {}, "reference": "Ilyas et al. 2017 Sections 2.3, 4.3"},
}
