"""The paper classifiers A, B, C as a model family with pretrained entries."""

import os

import keras

from tfdefense import datasets, evaluation, registry
from tfdefense.defended import DefendedClassifier
from tfdefense.classifiers.builders import build_classifier, classifier_a, classifier_b, classifier_c

WEIGHTS = "model.weights.h5"
_REFERENCE = "aegan_rs.txt (Table 5 architectures, Table 7 training; Section 4.1 accuracies)"
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
    model = build_classifier(**entry["config"])
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def save_classifier(model, entry, out_dir):
    # A fresh, uncompiled copy so the shipped file holds no optimizer state.
    clean = build_classifier(**entry["config"])
    clean.set_weights(model.get_weights())
    clean.save_weights(os.path.join(out_dir, WEIGHTS))
    return [WEIGHTS]


def measure_classifier(model, entry):
    x, y = datasets.load(entry["metadata"]["dataset"], "test")
    return {"clean_accuracy": {"value": round(evaluation.accuracy(model, x, y), 4),
                               "split": "test", "n": int(len(x))}}


def load_classifier(entry, folder):
    """The classifier as a defense with no purifier and no detector: the same
    input checks, outputs and export as every entry; the keras model is ``.classifier``."""
    model = build_classifier(**entry["config"])
    model.load_weights(os.path.join(folder, WEIGHTS))
    return DefendedClassifier(model, name=entry["name"])


registry.register_family(registry.Family("classifier", _build_for_training, save_classifier, measure_classifier,
                                         load_classifier, tiny={"config": {"arch": "c"}}))
for _name, _entry in _entries().items():
    registry.register(_name, _entry)

__all__ = ["build_classifier", "classifier_a", "classifier_b", "classifier_c"]
