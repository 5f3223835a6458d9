"""MagNet (Meng & Chen 2017): reconstruction-error detectors and an autoencoder reformer.

The baseline of AE-GAN+rs (anon.)'s Table 1: the Table 6 encoder and decoder
(no discriminator) with latent dimension 20 (its Table 8), trained as a
denoising autoencoder; two detectors flag inputs whose reconstruction error
(mean squared and mean absolute) is above a threshold at 0.1% false
positives on clean validation images, and every input is reformed by the
autoencoder before the classifier. It is differentiable end to end, so the
white-box attack uses its true gradient.

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("magnet_mnist")      # doctest: +SKIP
    >>> out = model.defend(x)                       # doctest: +SKIP

Reference:
    Meng & Chen, MagNet (CCS 2017); AE-GAN+rs (anon.) Appendix B, Tables 1, 4, 6, 8;
    Carlini & Wagner, MagNet and "efficient defenses against adversarial
    attacks" are not robust to adversarial examples (2017).
"""

import os

import keras

from tfdefense import datasets
from tfdefense.utils import batching
from tfdefense.zoo import registry
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.families.magnet import builders, presets
from tfdefense.families.magnet.model import MagNetAutoencoder
from tfdefense.purification import ModelPurifier, ReconstructionDetector

AUTOENCODER = "autoencoder.weights.h5"
def _build_for_training(entry, config):
    model = MagNetAutoencoder(*builders.autoencoder(entry["config"], registry.data_shape(entry)[0]),
                              noise_volume=entry["config"].get("noise_volume", 0.1))
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    return model


def _save(model, entry, out_dir):
    autoencoder = _autoencoder(entry)
    autoencoder.set_weights(model.encoder.get_weights() + model.decoder.get_weights())
    autoencoder.save_weights(os.path.join(out_dir, AUTOENCODER))
    return [AUTOENCODER]


def _autoencoder(entry):
    encoder, decoder = builders.autoencoder(entry["config"], registry.data_shape(entry)[0])
    return keras.Sequential([encoder, decoder], name="autoencoder")


def _measure(model, entry):
    x, _ = datasets.load(entry["metadata"]["dataset"], "test")
    errors = batching.per_image_mse(lambda b: model(b, training=False), x)
    return {"reconstruction_mse": {"value": round(float(errors.mean()), 6), "split": "test",
                                   "n": int(len(x))}}


def build_defended(autoencoder, classifier, thresholds=None, name="magnet"):
    """MagNet from its parts: the autoencoder reforms every input, and two
    detectors score its reconstruction error (MSE and L1) and reject above
    their thresholds (``{"mse": t1, "l1": t2}``; None: no rejection)."""
    thresholds = thresholds or {}
    detectors = [ReconstructionDetector(None, metric, threshold=thresholds.get(metric)) for metric in ("mse", "l1")]
    return DefendedClassifier(classifier, ModelPurifier(autoencoder), detectors, name=name)


def _load(entry, folder, classifier):
    autoencoder = _autoencoder(entry)
    autoencoder.load_weights(os.path.join(folder, AUTOENCODER))
    return build_defended(autoencoder, registry.load_classifier(classifier), name=entry["name"])


def _warm_start(model, entry, folder):
    """The published autoencoder; the optimizer starts fresh."""
    autoencoder = _autoencoder(entry)
    autoencoder.load_weights(os.path.join(folder, AUTOENCODER))
    weights = autoencoder.get_weights()
    split = len(model.encoder.get_weights())
    model.encoder.set_weights(weights[:split])
    model.decoder.set_weights(weights[split:])


# MagNet sets each detector's threshold at 0.1% false positives on clean
# validation images, so it calibrates on the whole validation split.
registry.register_family(registry.Family("magnet", _build_for_training, _save, _measure, _load,
                                         inference={"classifier": None},
                                         calibration={"fpr": 0.001, "n": None}, warm_start=_warm_start,
                                         tiny={"config": {"latent_dim": 4, "filters": 2}},
                                         any_shape=True, adapt=builders.adapt))
registry.register_presets(presets.TEMPLATE, presets.VARIANTS)

__all__ = ["MagNetAutoencoder", "build_defended"]
