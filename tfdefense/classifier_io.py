"""Saving, loading and measuring a Table 5 classifier's weights.

Shared by every family whose product is a classifier (the plain classifiers,
manifold adversarial training, PGD adversarial training), so none of them
imports another. A loaded classifier is a `DefendedClassifier` with no
purifier and no detector: the same input checks, outputs and export as
every entry; the keras model is its ``.classifier``.
"""

import os

from tfdefense import datasets, evaluation
from tfdefense.defended import DefendedClassifier
from tfdefense.networks import build_classifier

WEIGHTS = "model.weights.h5"


def save_classifier(model, arch, out_dir):
    """Writes the weights of ``model`` (architecture ``arch``) without optimizer state."""
    clean = build_classifier(arch)  # a fresh, uncompiled copy: the shipped file holds no optimizer state
    clean.set_weights(model.get_weights())
    clean.save_weights(os.path.join(out_dir, WEIGHTS))
    return [WEIGHTS]


def measure_classifier(model, dataset):
    """Clean test accuracy, for the card."""
    x, y = datasets.load(dataset, "test")
    return {"clean_accuracy": {"value": round(evaluation.accuracy(model, x, y), 4), "split": "test",
                               "n": int(len(x))}}


def load_classifier(arch, folder, name):
    """The classifier in ``folder`` as a defense named ``name``."""
    model = build_classifier(arch)
    model.load_weights(os.path.join(folder, WEIGHTS))
    return DefendedClassifier(model, name=name)
