"""DiffPure's zoo entries, as data (`tfdefense.zoo.presets`).

No seed paper evaluates diffusion purification on MNIST with classifier A, so
no paper figure is recorded; the anchors are the issue's: the best zoo
purifier's gray-box figures and adversarial training's AutoAttack figure
(advtrain_a_mnist).
"""

TEMPLATE = {
    "name": "diffpure_{short}",
    "family": "diffpure",
    "config": {"image_shape": [28, 28, 1], "filters": 32, "multipliers": [1, 2, 2], "timesteps": 1000,
               "ema_decay": 0.999},
    "inference": {"classifier": "classifier_a_{short}", "t_star": 150, "steps": 10, "eta": 1.0},
    "path": "{name}",
    "train": {"epochs": 12, "batch_size": 128, "learning_rate": 5e-4, "seed": 0, "dtype_policy": "mixed_bfloat16"},
    "metadata": {
        "dataset": "{dataset}",
        "description": "DiffPure on {dataset}: a small DDPM (0.57M parameters) diffuses every input "
                       "to t* and denoises it back in a few respaced reverse steps before classifier A.",
        "reported": {},
        "reference": "Nie et al. 2022 (arXiv:2205.07460); Ho et al. 2020 (arXiv:2006.11239)",
    },
}
