"""Assembling AE-GAN+rs from pretrained parts: detector, purifier, classifier A."""

import os

from tfdefense import registry
from tfdefense.aegan import builders
from tfdefense.defended import DefendedClassifier, inference_settings
from tfdefense.purification import Purifier

# Settings a user may override in `tfdefense.load("aegan_mnist", **settings)`.
INFERENCE_DEFAULTS = {"steps": 15, "step_size": 0.01, "restarts": 1, "threshold": None, "metric": "l1",
                      "bypass": True, "classifier": None}


def build_defended(encoder, decoder, classifier, steps=15, step_size=0.01, restarts=1, threshold=None,
                   metric="l1", bypass=True, name="aegan_rs"):
    """AE-GAN+rs from its parts: encoder-started search, L1 detector with bypass."""
    purifier = Purifier(decoder, encoder, steps=steps, step_size=step_size, restarts=restarts)
    return DefendedClassifier(classifier, purifier, threshold=threshold, metric=metric,
                              bypass=bypass, name=name)


def load_parts(entry, folder):
    """Encoder and decoder with the weights in ``folder``."""
    config = entry["config"]
    encoder = builders.encoder(config["latent_dim"], config["filters"])
    decoder = builders.decoder(config["latent_dim"], config["filters"])
    from tfdefense.aegan import DECODER, ENCODER

    encoder.load_weights(os.path.join(folder, ENCODER))
    decoder.load_weights(os.path.join(folder, DECODER))
    return encoder, decoder


def load(entry, folder, **overrides):
    card = registry.read_card(folder, verify=False)  # `registry.load` verified the files
    settings = inference_settings(INFERENCE_DEFAULTS, entry, card, overrides)
    classifier = registry.load(settings.pop("classifier"))
    encoder, decoder = load_parts(entry, folder)
    return build_defended(encoder, decoder, classifier, name=entry["name"], **settings)
