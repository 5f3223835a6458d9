"""Adversarial training's zoo entries and the figures its papers report, as data (`tfdefense.zoo.presets`).

What differs between the entries is how each was trained. Madry's MNIST schedule is 100k steps of
batch 50 (about 88 epochs) of PGD-40, about 12 hours of this machine's 2 cores, so
advtrain_a_mnist starts from the FGSM-RS entry's weights and continues with Madry's PGD-40 and
his Adam 1e-4 for 6 epochs (bfloat16: 2.3x faster here, and its PGD-40 examples are as strong as
float32's, 0.887 vs 0.887 on 300 validation images). On Fashion-MNIST FGSM-RS overfits
catastrophically at eps 0.3 (measured: PGD-40 accuracy 0.000), so advtrain_a_fmnist is PGD-40
from scratch, Adam 1e-3 for 10 epochs (validation PGD-40 accuracy flat at 0.58 from epoch 7),
then 1e-4 for 2. From scratch the budget ramps up over the first 2 epochs (1142 steps of 100 of
the 57100 training images): at full eps from the start classifier A collapsed to a constant
output; advtrain_a_mnist starts from a robust classifier, so no ramp.
"""

TEMPLATE = {
    "name": "advtrain_a_{short}{suffix}",
    "family": "advtrain",
    "config": {"arch": "a", "eps": 0.3, "steps": "{steps}", "step_size": "{step_size}", "clean_weight": 0.0,
               "eps_warmup_steps": "{eps_warmup_steps}"},
    "path": "{name}",
    # Validation attacks too: 5 batches keep its cost below a tenth of an epoch.
    "train": "{train}",
    "metadata": {
        "dataset": "{dataset}",
        "description": "Classifier A adversarially trained on {dataset} with {how}, Linf eps 0.3.",
        "reported": "{reported}",
        "reference": "Madry et al. 2018; Wong et al. 2020; AE-GAN+rs (anon.) Table 1 (Adv. Tr.)"},
}

_PGD = {"suffix": "", "steps": 40, "step_size": 0.01}
_FGSM_RS = {"suffix": "_fast", "steps": 1, "step_size": 0.375, "how": "FGSM from a random start (Wong et al. 2020)",
            "eps_warmup_steps": 1142, "reported": {},
            "train": {"batch_size": 100, "seed": 0, "validation_steps": 5, "epochs": 20, "learning_rate": 1e-3}}
# AE-GAN+rs (anon.) Table 1, "Adv. Tr." column (eps 0.3), for the PGD entries.
VARIANTS = (
    {**_PGD, "dataset": "mnist", "short": "mnist", "eps_warmup_steps": 0,
     "how": "40-step PGD (Madry et al.), starting from the FGSM-RS entry's weights",
     "train": {"batch_size": 100, "seed": 0, "validation_steps": 5, "epochs": 6, "learning_rate": 1e-4,
               "dtype_policy": "mixed_bfloat16", "init_from": "advtrain_a_mnist_fast"},
     "reported": {"white_box": {"fgsm_0.3": 0.949, "pgd_0.3": 0.920, "cw_l2": 0.772},
                  "black_box": {"fgsm_0.3": 0.971},
                  "madry_challenge": {"pgd_100_50_restarts": 0.896, "best_attack": 0.880}}},
    {**_FGSM_RS, "dataset": "mnist", "short": "mnist"},
    {**_PGD, "dataset": "fashion_mnist", "short": "fmnist", "eps_warmup_steps": 1142, "how": "40-step PGD (Madry et al.)",
     "train": {"batch_size": 100, "seed": 0, "validation_steps": 5, "epochs": 12, "learning_rate": 1e-3,
               "learning_rate_drops": [10], "dtype_policy": "mixed_bfloat16"},
     "reported": {"white_box": {"fgsm_0.3": 0.739, "pgd_0.3": 0.717, "cw_l2": 0.308}}},
    {**_FGSM_RS, "dataset": "fashion_mnist", "short": "fmnist"},
)
