"""The composed entries: a zoo purifier in front of the PGD-trained classifier A, as data."""

ROBUST = "advtrain_a_mnist"

TEMPLATE = {
    "name": "composed_{family}_advtrain_mnist",
    "family": "composed",
    "config": {"purifier_from": "{purifier}"},
    "inference": {"classifier": ROBUST},
    "path": "{name}",
    "train": {"epochs": 0, "batch_size": 100, "seed": 0},
    "metadata": {
        "dataset": "mnist",
        "description": "The purifier and detectors of {purifier} in front of " + ROBUST + " (PGD-trained "
                       "classifier A): does purification add to adversarial training?",
        "reported": {},
        "reference": "Shen et al. 2017, Tables 7-9; Madry et al. 2018",
    },
}

VARIANTS = tuple({"purifier": purifier, "family": purifier.split("_")[0]}
                 for purifier in ("apegan_mnist", "magnet_mnist", "diffpure_mnist"))
