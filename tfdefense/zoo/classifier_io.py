"""Saving, loading and measuring a Table 5 classifier's weights.

Shared by every family whose product is a classifier (the plain classifiers,
manifold adversarial training, PGD adversarial training), so none of them
imports another. A loaded classifier is a `DefendedClassifier` with no
purifier and no detector: the same input checks, outputs and export as
every entry; the keras model is its ``.classifier``.
"""

import os

import numpy as np

from tfdefense import datasets
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.defense.networks import build_classifier
from tfdefense.utils import batching

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
    labels = np.argmax(batching.concat_map(lambda b: model(b, training=False), x, 500), axis=-1)
    return {"clean_accuracy": {"value": round(float(np.mean(labels == y)), 4), "split": "test", "n": int(len(x))}}


def load_classifier(arch, folder, name):
    """The classifier in ``folder`` (builder arguments ``arch``) as a defense named ``name``."""
    model = build_classifier(**arch)
    model.load_weights(os.path.join(folder, WEIGHTS))
    return DefendedClassifier(model, name=name)


def hooks(network=lambda model: model):
    """The `registry.Family` hooks (save, measure, load, warm_start) of a family whose product is a
    classifier. ``network`` picks the classifier out of the family's training model: the model itself,
    or the ``.classifier`` of a training wrapper (adversarial training).

    Example:
        >>> registry.Family("advtrain", build, **hooks(lambda model: model.classifier))   # doctest: +SKIP
    """
    def save(model, entry, out_dir):
        return save_classifier(network(model), architecture(entry["config"]), out_dir)

    def measure(model, entry):
        return measure_classifier(network(model), entry["metadata"]["dataset"])

    def load(entry, folder):
        return load_classifier(architecture(entry["config"]), folder, entry["name"])

    def warm_start(model, entry, folder):
        network(model).load_weights(os.path.join(folder, WEIGHTS))

    return {"save": save, "measure": measure, "load": load, "warm_start": warm_start}
