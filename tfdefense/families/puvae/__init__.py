"""PuVAE (Hwang et al. 2019) with a MagNet-style detector (Wester & Thisted 2020).

A class-conditional VAE, trained with a frozen classifier's cross-entropy on
its reconstructions, purifies an input by reconstructing it once for every
class (one batched pass) and keeping the reconstruction with the smallest
RMSE to the input. That RMSE is also the detector's score: above a
threshold set at 0.1% false positives on clean MNIST validation images (1%
on Fashion-MNIST) the input gets the reject decision.

The pipeline is differentiable through the chosen reconstruction and random
through the posterior sampling, so white-box attacks use its true gradient
with EOT, and the detector-aware attack puts the RMSE in its loss.

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("puvae_mnist")      # doctest: +SKIP
    >>> out = model.defend(x)                      # doctest: +SKIP

Reference:
    Hwang, Park, Jang, Yoon, Cho: PuVAE: A Variational Autoencoder to Purify
    Adversarial Examples (2019); Wester & Thisted 2020 Sections 3.1, 4, 5 and
    Tables 2-4, 6.
"""

import os

import keras
import numpy as np

from tfdefense import datasets
from tfdefense.utils import batching
from tfdefense.zoo import registry
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.purification import PurificationErrorDetector
from tfdefense.families.puvae import builders, losses, presets
from tfdefense.families.puvae.model import PuVAE
from tfdefense.families.puvae.purifier import ClassConditionalPurifier

# The trunk (25.8M parameters, 96% of them in the first dense layer's 25088 x 1024 image share) is
# stored in float16 so a clone stays lean and no file nears 100 MB; it computes in float32.
# The card records what the rounding costs (`_measure`).
WEIGHTS = {"trunk": "trunk.float16.weights.h5", "head": "head.weights.h5", "decoder": "decoder.weights.h5"}
STORED_DTYPE = {"trunk": "float16"}
# Inference decodes the posterior mean (sampling_scale 0), chosen on 1000 MNIST validation images
# (benchmarks/puvae_decompose.py --split=validation): against sampling z (scale 1), purification alone gains
# 1.0 / 5.5 / 5.9 / 4.1 points on clean / FGSM / BIM / PGD (eps 0.3), and the pipeline is deterministic.
SAMPLING_SCALE = 0.0


def _build_for_training(entry, config):
    model = PuVAE.from_config_dict(entry["config"], registry.load_classifier(entry["config"]["classifier"]))
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    return model


def _networks(config, dtype=None):
    shape = tuple(config.get("image_shape", builders.MNIST_SHAPE))
    classes = config.get("num_classes", builders.CLASSES)
    return {"trunk": builders.trunk(config["filters"], config["hidden"], shape, dtype=dtype),
            "head": builders.head(config["latent_dim"], config["hidden"], classes),
            "decoder": builders.decoder(config["latent_dim"], config["filters"], classes, output=config["output"],
                                        image_shape=shape)}


def _save(model, entry, out_dir):
    for part, filename in WEIGHTS.items():
        network = getattr(model, part)
        if part in STORED_DTYPE:  # a half-precision twin holds the rounded copy in Keras' format
            twin = _networks(entry["config"], STORED_DTYPE[part])[part]
            twin.set_weights(network.get_weights())
            network = twin
        network.save_weights(os.path.join(out_dir, filename))
    return list(WEIGHTS.values())


def _rounded(network, config, part):
    """A float32 copy of ``network`` holding the weights as stored (rounded to STORED_DTYPE)."""
    twin, copy = _networks(config, STORED_DTYPE[part])[part], _networks(config)[part]
    twin.set_weights(network.get_weights())
    copy.set_weights([w.astype("float32") for w in twin.get_weights()])
    return copy


def _measure(model, entry):
    """Test-split reconstruction MSE with the true label (posterior mean), and the accuracy of
    classifier A on the min-RMSE reconstruction (seed 0; the paper's "PuVAE" clean column) with the
    trained weights and with the trunk as stored in float16."""
    x, y = datasets.load(entry["metadata"]["dataset"], "test")
    trunks = {"float32": model.trunk, "float16_stored": _rounded(model.trunk, entry["config"], "trunk")}
    purifiers = {k: ClassConditionalPurifier(t, model.head, model.decoder) for k, t in trunks.items()}
    mse, correct = [], {k: 0 for k in purifiers}
    for batch in batching.batches(len(x), 250):
        xb, yb = x[batch], y[batch]
        mse.append(float(losses.reconstruction_mse(xb, model((xb, yb))[0])) * len(xb))
        for k, purifier in purifiers.items():
            logits = model.classifier(purifier(xb)["images"], training=False)
            correct[k] += int(np.sum(np.argmax(np.asarray(logits), axis=1) == yb))
    test = {"split": "test", "n": int(len(x))}
    return {"reconstruction_mse_true_label": {"value": round(float(np.sum(mse) / len(x)), 6), **test},
            **{f"purified_accuracy_seed0_{k}": {"value": round(c / len(x), 4), **test} for k, c in correct.items()}}


def build_defended(trunk, head, decoder, classifier, threshold=None, sampling_scale=0.0, soft_temperature=0.01,
                   name="puvae"):
    """PuVAE from its parts: the min-RMSE class-conditional reconstruction goes to the classifier,
    and inputs whose smallest RMSE exceeds ``threshold`` are rejected (None: no rejection).
    ``soft_temperature`` only shapes the attack surrogate (`ClassConditionalPurifier.surrogate`)."""
    purifier = ClassConditionalPurifier(trunk, head, decoder, sampling_scale=sampling_scale,
                                        soft_temperature=soft_temperature)
    return DefendedClassifier(classifier, purifier, [PurificationErrorDetector(threshold=threshold, name="rmse")],
                              name=name)


def _load_networks(config, folder):
    nets = _networks(config)
    for part, filename in WEIGHTS.items():
        if part in STORED_DTYPE:
            twin = _networks(config, STORED_DTYPE[part])[part]
            twin.load_weights(os.path.join(folder, filename))
            nets[part].set_weights([w.astype("float32") for w in twin.get_weights()])
        else:
            nets[part].load_weights(os.path.join(folder, filename))
    return nets


def _load(entry, folder, classifier, **settings):
    nets = _load_networks(entry["config"], folder)
    return build_defended(**nets, classifier=registry.load_classifier(classifier), name=entry["name"], **settings)


def _warm_start(model, entry, folder):
    """The published networks (the trunk as stored, rounded to float16); the optimizer starts fresh."""
    for part, network in _load_networks(entry["config"], folder).items():
        getattr(model, part).set_weights(network.get_weights())


registry.register_family(registry.Family("puvae", _build_for_training, _save, _measure, _load,
                                         inference={"classifier": None, "sampling_scale": SAMPLING_SCALE,
                                                    "soft_temperature": 0.01},
                                         calibration={"fpr": 0.001, "n": None}, warm_start=_warm_start,
                                         tiny={"config": {"latent_dim": 4, "filters": 2, "hidden": 8}},
                                         any_shape=True))
registry.register_presets(presets.TEMPLATE, presets.VARIANTS)

__all__ = ["ClassConditionalPurifier", "PuVAE", "build_defended", "builders", "losses"]
