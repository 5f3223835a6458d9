"""DiffPure (Nie et al. 2022): diffusion purification with a small DDPM.

A noise-prediction UNet is trained with the DDPM loss on clean images
(`DiffusionModel`); at inference every input is diffused to a small
timestep t* and denoised back by a respaced reverse sampler
(`DiffusionPurifier`), which washes out a perturbation smaller than the
added noise. The purifier is random (seeded per request) and
differentiable: white-box attacks take the exact gradient through every
sampler step, averaged over the noise (EOT); BPDA through identity is the
weak reference. t* and the number of reverse steps are inference settings.

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("diffpure_mnist")                 # doctest: +SKIP
    >>> out = model.defend(x, seed=0)                            # doctest: +SKIP
    >>> model = tfdefense.load("diffpure_mnist", t_star=200)     # doctest: +SKIP

Reference:
    Nie, Guo, Huang, Xiao, Vahdat, Anandkumar: Diffusion Models for
    Adversarial Purification (ICML 2022, arXiv:2205.07460); Lee & Kim: Robust
    Evaluation of Diffusion-Based Adversarial Purification (ICCV 2023,
    arXiv:2303.09051); Ho, Jain, Abbeel: Denoising Diffusion Probabilistic
    Models (NeurIPS 2020, arXiv:2006.11239).
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tfdefense import datasets
from tfdefense.utils import batching
from tfdefense.zoo import calibration, registry
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.families.diffpure import builders, presets, schedule
from tfdefense.defense import cost
from tfdefense.families.diffpure.model import DiffusionModel
from tfdefense.families.diffpure.purifier import DiffusionPurifier

UNET = "unet_ema.weights.h5"


def _unet(entry):
    config = entry["config"]
    return builders.noise_unet(tuple(config["image_shape"]), config["filters"], tuple(config["multipliers"]))


def _build_for_training(entry, config):
    model = DiffusionModel.from_config_dict(entry["config"])
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    return model


def _save(model, entry, out_dir):
    model.ema.save_weights(os.path.join(out_dir, UNET))
    return [UNET]


def _measure(model, entry):
    """The noise-prediction MSE of the EMA UNet on 2000 test images at fixed timesteps (seeded)."""
    x, _ = datasets.load(entry["metadata"]["dataset"], "test")
    x = x[:2000] * 2.0 - 1.0
    abar = schedule.alpha_bars(model.timesteps)
    measured = {}
    for t in (50, 150, 300):
        errors = []
        for batch in batching.batches(len(x), 500):
            noise = tf.random.stateless_normal(x[batch].shape, [t, batch.start])
            x_t = schedule.diffuse(x[batch], float(abar[t]), noise)
            eps = model.ema([x_t, tf.fill([len(x_t)], t)], training=False)
            errors.append(np.mean((np.asarray(eps) - np.asarray(noise)) ** 2) * len(x_t))
        measured[f"eps_mse_t{t}"] = {"value": round(float(np.sum(errors) / len(x)), 6), "split": "test",
                                     "n": int(len(x))}
    measured["unet_flops_per_call"] = {"value": cost.forward_flops(model.ema)}
    return measured


def build_defended(unet, classifier, name="diffpure", **settings):
    """DiffPure from its parts: every input diffused and denoised by ``unet``, then the classifier.
    ``settings`` are `DiffusionPurifier`'s (``t_star``, ``steps``, ``eta``, ...)."""
    return DefendedClassifier(classifier, DiffusionPurifier(unet, **settings), name=name)


def _load(entry, folder, classifier, **settings):
    unet = _unet(entry)
    unet.load_weights(os.path.join(folder, UNET))
    return build_defended(unet, registry.load_classifier(classifier), name=entry["name"],
                          timesteps=entry["config"]["timesteps"], **settings)


def _warm_start(model, entry, folder):
    """The published EMA weights into both the UNet and its average; the optimizer starts fresh."""
    model.ema.load_weights(os.path.join(folder, UNET))
    model.unet.set_weights(model.ema.get_weights())


T_STARS = (50, 100, 150, 200, 250, 300, 400)
STEPS = (2, 5, 10, 20)


def _tune(build, x, y, *, eps=0.3, seed=0, t_stars=T_STARS, sampler_steps=STEPS, attacks_used=("fgsm", "pgd")):
    """t*, then the number of reverse steps at that t*, each with the best worst case over clean accuracy and
    the gray-box attacks on validation images (a tie goes to the smaller value: less noise, fewer UNet calls).
    A larger t* washes out a larger perturbation and more of the digit with it; the tables are the trade-offs."""
    model = build(t_star=t_stars[0])
    inputs = {"clean": x, **calibration.gray_box_examples(model, x, y, eps=eps, seed=seed, attacks_used=attacks_used)}
    chosen, by_t_star = calibration.best_setting(build, y, "t_star", t_stars, inputs)
    steps, by_steps = calibration.best_setting(lambda **s: build(**chosen, **s), y, "steps", sampler_steps, inputs)
    return {**chosen, **steps}, {"t_star": by_t_star, "steps": by_steps}


registry.register_family(registry.Family(
    "diffpure", _build_for_training, _save, _measure, _load,
    inference={"classifier": None, "t_star": 150, "steps": 10, "eta": 1.0},
    tune=_tune, calibration={"fpr": 0.05, "n": 500},
    warm_start=_warm_start, any_shape=True,
    tiny={"config": {"filters": 8, "multipliers": [1, 2]}, "inference": {"t_star": 20, "steps": 2}}))
registry.register_presets(presets.TEMPLATE)

__all__ = ["DiffusionModel", "DiffusionPurifier", "build_defended", "builders", "schedule"]
