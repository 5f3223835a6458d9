"""Saving, loading and measuring a Table 5 classifier's weights.

Shared by every family whose product is a classifier (the plain classifiers,
manifold adversarial training, PGD adversarial training), so none of them
imports another. A loaded classifier is a `DefendedClassifier` with no
purifier and no detector: the same input checks, outputs and export as
every entry; the keras model is its ``.classifier``.
"""

import os

from tfdefense import datasets, evaluation
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.defense.networks import build_classifier

WEIGHTS = "model.weights.h5"


# The keys of an entry's config that describe the network (the rest are training settings).
ARCHITECTURE_KEYS = ("arch", "filters", "units")


def architecture(config):
    """The builder arguments in an entry's ``config`` (its image shape and classes, if it states them)."""
    arch = {k: config[k] for k in ARCHITECTURE_KEYS if k in config}
    if "image_shape" in config:
        arch["input_shape"] = tuple(config["image_shape"])
    if "num_classes" in config:
        arch["num_classes"] = int(config["num_classes"])
    return arch


def save_classifier(model, arch, out_dir):
    """Writes the weights of ``model`` (builder arguments ``arch``) without optimizer state."""
    clean = build_classifier(**arch)  # a fresh, uncompiled copy: the shipped file holds no optimizer state
    clean.set_weights(model.get_weights())
    clean.save_weights(os.path.join(out_dir, WEIGHTS))
    return [WEIGHTS]


def measure_classifier(model, dataset):
    """Clean test accuracy, for the card."""
    x, y = datasets.load(dataset, "test")
    return {"clean_accuracy": {"value": round(evaluation.accuracy(model, x, y), 4), "split": "test",
                               "n": int(len(x))}}


def load_classifier(arch, folder, name):
    """The classifier in ``folder`` (builder arguments ``arch``) as a defense named ``name``."""
    model = build_classifier(**arch)
    model.load_weights(os.path.join(folder, WEIGHTS))
    return DefendedClassifier(model, name=name)


# The `registry.Family` hooks of a family whose product is a classifier.
# ``model`` is the classifier itself or a training wrapper holding it as ``.classifier``.
def save(model, entry, out_dir):
    return save_classifier(getattr(model, "classifier", model), architecture(entry["config"]), out_dir)


def measure(model, entry):
    return measure_classifier(getattr(model, "classifier", model), entry["metadata"]["dataset"])


def load(entry, folder):
    return load_classifier(architecture(entry["config"]), folder, entry["name"])


def warm_start(model, entry, folder):
    getattr(model, "classifier", model).load_weights(os.path.join(folder, WEIGHTS))
