"""APE-GAN's zoo entries and the figures its paper reports, as data (`tfdefense.zoo.presets`)."""

TEMPLATE = {
    "name": "apegan_{short}",
    "family": "apegan",
    "config": {"filters": 64, "eps": 0.3, "mse_weight": 0.7, "adversarial_weight": 0.3, "generator_steps": 2,
               "classifier": "classifier_a_{short}"},
    "inference": {"classifier": "classifier_a_{short}"},
    "path": "{name}",
    "train": {"epochs": 2, "batch_size": 64, "learning_rate": 2e-4, "seed": 0, "dtype_policy": "float32"},
    "metadata": {
        "dataset": "{dataset}",
        "description": "APE-GAN on {dataset}: a generator trained on FGSM (eps 0.3) examples of "
                       "classifier A removes the perturbation in one forward pass.",
        "reported": "{reported}",
        "reference": "Shen et al. 2017 Tables 1-3, 6; Eqs. 10-14; Section 4.1.3",
    },
}

# Shen et al. 2017 Tables 1-3, MNIST, as accuracies (100 - error %). Its FGSM/JSMA
# target is cleverhans' model C, its DeepFool target model A and its CW target
# Carlini's model, none of them the zoo's classifier A.
# Gaussian noise (variance 0.05) is Table 2's benign input.
VARIANTS = (
    {"dataset": "mnist", "short": "mnist",
     "reported": {"gray_box": {"fgsm_0.1": 0.992, "fgsm_0.2": 0.989, "fgsm_0.3": 0.972, "fgsm_0.4": 0.790,
                               "deepfool": 0.978, "jsma": 0.614, "cw_l2": 0.985, "cw_linf": 0.988,
                               "gaussian_noise": 0.984},
                  "clean_accuracy": 0.988}},
    {"dataset": "fashion_mnist", "short": "fmnist", "reported": {}},
)
