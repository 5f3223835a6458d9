"""PuVAE's zoo entries and the figures its papers report, as data (`tfdefense.zoo.presets`)."""

TEMPLATE = {
    "name": "puvae_{short}",
    "family": "puvae",
    "config": {"latent_dim": "{latent}", "filters": 32, "hidden": 1024, "output": "sigmoid",
               "reconstruction_weight": 1.0, "kl_weight": 1e-3, "ce_weight": 0.1,
               "classifier": "classifier_a_{short}"},
    "inference": {"classifier": "classifier_a_{short}"},
    "calibration": {"fpr": "{fpr}", "n": None},
    "path": "{name}",
    # Table 2: 350 epochs at batch 512; the budget here is far smaller (see the card).
    "train": {"epochs": 30, "batch_size": 512, "learning_rate": 1e-3, "seed": 0, "dtype_policy": "mixed_bfloat16"},
    "metadata": {
        "dataset": "{dataset}",
        "description": "PuVAE on {dataset}: a class-conditional VAE (latent {latent}) reconstructs "
                       "each input once per class, the reconstruction nearest the input (RMSE) goes "
                       "to classifier A, and inputs whose best RMSE exceeds a threshold ({fpr:.1%} "
                       "false positives on clean validation images) are rejected.",
        "reported": "{reported}",
        "reference": "Hwang et al. 2019; Wester & Thisted 2020 Sections 3.1, 4, 5; Tables 2-4, 6",
    },
}

# Wester & Thisted 2020 Tables 3 and 4 (eps 0.3, classifier A), as accuracies. "PuVAE" is purification
# alone (the card's gray_box_no_detector section: `--set=threshold=null`); "with detector" is the paper's
# "Ours", which counts a rejected adversarial input as handled: the harness's "defended or rejected"
# column, printed beside plain accuracy, never instead of it.
VARIANTS = (
    {"dataset": "mnist", "short": "mnist", "latent": 32, "fpr": 0.001,
     "reported": {"gray_box_no_detector": {"clean": 0.972, "fgsm_0.3": 0.829, "bim_0.3": 0.939, "pgd_0.3": 0.864},
                  "gray_box_defended_or_rejected": {"clean": 0.972, "fgsm_0.3": 0.998, "bim_0.3": 0.939,
                                                    "pgd_0.3": 0.969},
                  "gray_box_defended_or_rejected_worst_eps": {"fgsm": 0.962, "bim": 0.939, "pgd": 0.930},
                  "clean_accuracy": 0.972}},
    {"dataset": "fashion_mnist", "short": "fmnist", "latent": 128, "fpr": 0.01,
     "reported": {"gray_box_no_detector": {"clean": 0.825, "fgsm_0.3": 0.556, "bim_0.3": 0.778, "pgd_0.3": 0.673},
                  "gray_box_defended_or_rejected": {"clean": 0.821, "fgsm_0.3": 0.879, "bim_0.3": 0.775,
                                                    "pgd_0.3": 0.771},
                  "gray_box_defended_or_rejected_worst_eps": {"fgsm": 0.742, "bim": 0.775, "pgd": 0.732},
                  "clean_accuracy": 0.825}},
)
