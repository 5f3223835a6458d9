"""The paper classifiers A, B, C as a model family with pretrained entries."""

import keras

from tfdefense.zoo import classifier_io, registry
from tfdefense.families.classifiers.builders import build_classifier, classifier_a, classifier_b, classifier_c

_REFERENCE = "AE-GAN+rs (anon.) (Table 5 architectures, Table 7 training; Section 4.1 accuracies)"
_REPORTED = {("a", "mnist"): 0.990, ("a", "fashion_mnist"): 0.918}
_SHORT = {"mnist": "mnist", "fashion_mnist": "fmnist"}


def _entries():
    entries = {}
    for arch in "abc":
        for dataset, short in _SHORT.items():
            reported = _REPORTED.get((arch, dataset))
            entries[f"classifier_{arch}_{short}"] = {
                "family": "classifier",
                "config": {"arch": arch},
                "path": f"classifier_{arch}_{short}",
                "train": {"epochs": 10, "batch_size": 100, "learning_rate": 1e-3, "seed": 0},
                "metadata": {
                    "dataset": dataset,
                    "description": f"Classifier {arch.upper()} of Table 5 on {dataset}; outputs logits.",
                    "reported": {"clean_accuracy": reported} if reported else {},
                    "reference": _REFERENCE,
                },
            }
    return entries


def _build_for_training(entry, config):
    model = build_classifier(**classifier_io.architecture(entry["config"]))
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


registry.register_family(registry.Family("classifier", _build_for_training, classifier_io.save, classifier_io.measure,
                                         classifier_io.load, warm_start=classifier_io.warm_start,
                                         tiny={"config": {"arch": "c"}}, any_shape=True))
for _name, _entry in _entries().items():
    registry.register(_name, _entry)

__all__ = ["build_classifier", "classifier_a", "classifier_b", "classifier_c"]
