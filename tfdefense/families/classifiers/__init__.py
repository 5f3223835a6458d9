"""The paper classifiers A, B, C as a model family with pretrained entries."""

import keras

from tfdefense.zoo import classifier_io, registry
from tfdefense.families.classifiers import presets
from tfdefense.families.classifiers.builders import build_classifier, classifier_a, classifier_b, classifier_c


def _build_for_training(entry, config):
    model = build_classifier(**classifier_io.architecture(entry["config"]))
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


registry.register_family(registry.Family("classifier", _build_for_training, **classifier_io.hooks(),
                                         tiny={"config": {"arch": "c"}}, any_shape=True))
registry.register_presets(presets.TEMPLATE, presets.VARIANTS)

__all__ = ["build_classifier", "classifier_a", "classifier_b", "classifier_c"]
