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
from tfdefense.families.aegan import builders, defended, losses
from tfdefense.families.aegan.defended import DECODER, ENCODER
from tfdefense.families.aegan.model import AEGAN

RECALIBRATION_IMAGES = 10000
_REFERENCE = "AE-GAN+rs (anon.): Table 6 architectures, Table 4 schedule, Algorithms 1-2, Tables 1-3"
MODEL_DEFAULTS = {"latent_dim": 128, "filters": 64, "noise_eta": 0.3, "adversarial": True,
                  "adversarial_weight": 1.0, "noise": "gaussian"}


def _entries():
    reported = {
        "mnist": {"clean_accuracy": 0.98, "gray_box": {"fgsm_0.3": 0.882, "pgd_0.3": 0.910, "cw_l2": 0.915},
                  "white_box": {"fgsm_0.3": 0.984, "pgd_0.3": 0.982, "cw_l2": 0.979},
                  "black_box": {"fgsm_0.3": 0.935}},  # Table 1, substitute B (0.933 with C)
        "fashion_mnist": {"white_box": {"fgsm_0.3": 0.804, "pgd_0.3": 0.816, "cw_l2": 0.767}},
    }
    entries = {}
    for dataset, short in (("mnist", "mnist"), ("fashion_mnist", "fmnist")):
        entries[f"aegan_{short}"] = {
            "family": "aegan",
            "config": dict(MODEL_DEFAULTS),
            "inference": {"classifier": f"classifier_a_{short}", "steps": 15},
            "path": f"aegan_{short}",
            "train": {"epochs": 60, "batch_size": 100, "learning_rate": 2e-4, "seed": 0,
                      "dtype_policy": "mixed_bfloat16"},
            "metadata": {
                "dataset": dataset,
                "description": f"AE-GAN+rs on {dataset}: detector, encoder-assisted latent search "
                               "(L=15) and classifier A.",
                "reported": reported[dataset],
                "reference": _REFERENCE,
            },
        }
    return entries


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
for _name, _entry in _entries().items():
    registry.register(_name, _entry)

__all__ = ["AEGAN", "builders", "defended", "losses"]
