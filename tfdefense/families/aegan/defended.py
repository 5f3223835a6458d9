"""Assembling AE-GAN+rs from pretrained parts: L1 detector with bypass, latent search, classifier A."""

import os

from tfdefense.defense import networks
from tfdefense.zoo import registry
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.purification import LatentSearchPurifier, ReconstructionDetector

ENCODER, DECODER = "encoder.weights.h5", "decoder.weights.h5"
# Settings a user may override in `tfdefense.load("aegan_mnist", **settings)`
# (the detector threshold is set like every defense's: threshold=).
INFERENCE_DEFAULTS = {"steps": 15, "step_size": 0.01, "restarts": 1, "metric": "l1", "bypass": True,
                      "classifier": None}


def build_defended(encoder, decoder, classifier, steps=15, step_size=0.01, restarts=1, threshold=None,
                   metric="l1", bypass=True, name="aegan_rs"):
    """AE-GAN+rs from its parts.

    The detector scores the error of G(F(x)) (``metric``); with ``bypass``
    and a threshold, unflagged images take G(F(x)) and only flagged ones are
    searched (L=``steps`` from F(x)). Flagged images are purified, not rejected.
    """
    purifier = LatentSearchPurifier(decoder, encoder, steps=steps, step_size=step_size, restarts=restarts)
    # The detector scores against the purifier's surrogate G(F(x)).
    detector = ReconstructionDetector(None, metric, threshold=threshold, bypass=bypass, rejects=False)
    return DefendedClassifier(classifier, purifier, [detector], name=name)


def load_parts(entry, folder):
    """Encoder and decoder with the weights in ``folder``."""
    config, shape = entry["config"], registry.data_shape(entry)[0]
    encoder = networks.encoder(config["latent_dim"], config["filters"], input_shape=shape)
    decoder = networks.decoder(config["latent_dim"], config["filters"], image_shape=shape)
    encoder.load_weights(os.path.join(folder, ENCODER))
    decoder.load_weights(os.path.join(folder, DECODER))
    return encoder, decoder


def load(entry, folder, classifier, **settings):
    """The family's `registry.Family.load`: settings arrive merged and checked."""
    encoder, decoder = load_parts(entry, folder)
    return build_defended(encoder, decoder, registry.load_classifier(classifier), name=entry["name"], **settings)
