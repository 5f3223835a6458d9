"""The paper classifiers' zoo entries (A, B, C on both datasets) and their reported accuracies, as data."""

TEMPLATE = {
    "name": "classifier_{arch}_{short}",
    "family": "classifier",
    "config": {"arch": "{arch}"},
    "path": "{name}",
    "train": {"epochs": 10, "batch_size": 100, "learning_rate": 1e-3, "seed": 0},
    "metadata": {
        "dataset": "{dataset}",
        "description": "Classifier {arch_upper} of Table 5 on {dataset}; outputs logits.",
        "reported": "{reported}",
        "reference": "AE-GAN+rs (anon.) (Table 5 architectures, Table 7 training; Section 4.1 accuracies)",
    },
}

# AE-GAN+rs (anon.) Section 4.1: classifier A's clean accuracy.
_ACCURACY_A = {"mnist": 0.990, "fashion_mnist": 0.918}
VARIANTS = tuple({"arch": arch, "arch_upper": arch.upper(), "dataset": dataset, "short": short,
                  "reported": {"clean_accuracy": _ACCURACY_A[dataset]} if arch == "a" else {}}
                 for arch in "abc" for dataset, short in (("mnist", "mnist"), ("fashion_mnist", "fmnist")))
