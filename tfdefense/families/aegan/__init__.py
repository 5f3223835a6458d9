"""AE-GAN+rs: encoder-assisted latent search (the zoo's flagship).

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("aegan_mnist")        # doctest: +SKIP
    >>> out = model.defend(x)                          # doctest: +SKIP

Reference:
    Defense against adversarial examples by encoder-assisted search in the
    latent coding space (AE-GAN+rs (anon.)).
"""

import os

import keras

from tfdefense import datasets
from tfdefense.utils import batching
from tfdefense.zoo import calibration, registry
from tfdefense.families.aegan import builders, defended, losses, presets
from tfdefense.families.aegan.defended import DECODER, ENCODER
from tfdefense.families.aegan.model import AEGAN

RECALIBRATION_IMAGES = 10000


def _build_for_training(entry, config):
    model = AEGAN.from_config_dict(entry["config"])
    adam = lambda: keras.optimizers.Adam(config["learning_rate"], beta_1=0.5)  # noqa: E731
    model.compile(d_optimizer=adam(), g_optimizer=adam(), e_optimizer=adam())
    return model


def _save(model, entry, out_dir):
    x, _ = datasets.load(entry["metadata"]["dataset"], "train")
    model.recalibrate_decoder_statistics(x[:RECALIBRATION_IMAGES])
    model.encoder.save_weights(os.path.join(out_dir, ENCODER))
    model.decoder.save_weights(os.path.join(out_dir, DECODER))
    return [ENCODER, DECODER]


def _measure(model, entry):
    x, _ = datasets.load(entry["metadata"]["dataset"], "test")
    errors = batching.per_image_mse(lambda b: model(b, training=False), x)
    return {"reconstruction_mse_gfx": {"value": round(float(errors.mean()), 6), "split": "test",
                                       "n": int(len(x))}}


def _warm_start(model, entry, folder):
    """The published encoder and decoder; the discriminator and the optimizers start fresh."""
    model.encoder.load_weights(os.path.join(folder, defended.ENCODER))
    model.decoder.load_weights(os.path.join(folder, defended.DECODER))


registry.register_family(registry.Family("aegan", _build_for_training, _save, _measure, defended.load,
                                         inference=defended.INFERENCE_DEFAULTS, tune=calibration.tune_step_size,
                                         warm_start=_warm_start,
                                         tiny={"config": {"latent_dim": 4, "filters": 2}, "inference": {"steps": 2}},
                                         any_shape=True))
registry.register_presets(presets.TEMPLATE, presets.VARIANTS)

__all__ = ["AEGAN", "builders", "defended", "losses"]
