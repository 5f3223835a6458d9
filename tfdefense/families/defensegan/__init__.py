"""Defense-GAN / Invert-and-Classify (INC): project onto a GAN's range by
latent search from random restarts, then classify; reject inputs whose best
reconstruction error is too large.

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("defensegan_mnist")   # doctest: +SKIP
    >>> faster = tfdefense.load("defensegan_mnist", steps=60, restarts=1)   # doctest: +SKIP

    The faster search warns: its card's step size and threshold were
    calibrated for R=10 x L=200.

Reference:
    Samangouei et al., Defense-GAN (ICLR 2018); Ilyas et al., The robust
    manifold defense (Ilyas et al. 2017, Invert-and-Classify).
"""

import os

import keras

from tfdefense.defense import networks
from tfdefense.zoo import calibration, classifier_io, registry
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.families.defensegan import presets
from tfdefense.families.defensegan.model import WGANGP
from tfdefense.families.defensegan.robust import ManifoldAdversarialTraining
from tfdefense.purification import PurificationErrorDetector, LatentSearchPurifier

GENERATOR = "generator.weights.h5"
# Published beside the generator only so that training can continue on another
# machine with the critic it was trained against; inference never reads it.
CRITIC = "critic.weights.h5"
# R=10 restarts x L=200 steps as in Defense-GAN; the step size is chosen on
# validation data by `tfdefense calibrate` and the threshold rejects (INC).
INFERENCE_DEFAULTS = {"steps": 200, "restarts": 10, "step_size": 0.01, "decay_every": 50, "decay": 0.5,
                      "momentum": 0.0, "init_scale": 1.0, "classifier": None}


def _build_for_training(entry, config):
    model = WGANGP.from_config_dict(entry["config"])
    adam = lambda: keras.optimizers.Adam(config["learning_rate"], beta_1=0.5, beta_2=0.9)  # noqa: E731
    model.compile(c_optimizer=adam(), g_optimizer=adam())
    return model


def _save(model, entry, out_dir):
    model.generator.save_weights(os.path.join(out_dir, GENERATOR))
    model.critic.save_weights(os.path.join(out_dir, CRITIC))
    return [GENERATOR, CRITIC]


def _measure(model, entry):
    return {}  # measured by `tfdefense calibrate` and `tfdefense evaluate --update-card`


def build_defended(generator, classifier, steps=200, restarts=10, step_size=0.01, decay_every=50, decay=0.5,
                   momentum=0.0, init_scale=1.0, threshold=None, name="defensegan"):
    """INC: random-restart search from N(0, I), reject if the best search error is above ``threshold``."""
    purifier = LatentSearchPurifier(generator, None, steps=steps, step_size=step_size, restarts=restarts,
                        decay_every=decay_every, decay=decay, prior="normal", z_clip=None, momentum=momentum,
                        init_scale=init_scale)
    return DefendedClassifier(classifier, purifier, [PurificationErrorDetector(threshold=threshold)], name=name)


def _load(entry, folder, classifier, **settings):
    classifier = registry.load_classifier(classifier)
    generator = networks.decoder(entry["config"]["latent_dim"], entry["config"]["filters"],
                                 image_shape=registry.data_shape(entry)[0], name="generator")
    generator.load_weights(os.path.join(folder, GENERATOR))
    return build_defended(generator, classifier, name=entry["name"], **settings)


def _build_robust(entry, config):
    c = entry["config"]
    model = ManifoldAdversarialTraining(registry.load_classifier(c["init"]),
                                        registry.load(c["generator"]).purifier.decoder,
                                        mu=c["mu"], attack_steps=c["attack_steps"], pairs=c["pairs"])
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    return model


def _warm_start(model, entry, folder):
    """The published generator and, where it was published too, its critic; the optimizers start fresh.

    Weights published before the critic was (defensegan_* at 4 and 6 epochs)
    continue with a fresh critic, which the training card records."""
    model.generator.load_weights(os.path.join(folder, GENERATOR))
    if os.path.exists(os.path.join(folder, CRITIC)):
        model.critic.load_weights(os.path.join(folder, CRITIC))


registry.register_family(registry.Family("defensegan", _build_for_training, _save, _measure, _load,
                                         inference=INFERENCE_DEFAULTS, tune=calibration.tune_step_size,
                                         calibration={"fpr": 0.05, "n": 100}, warm_start=_warm_start,
                                         tiny={"config": {"latent_dim": 4, "filters": 2, "critic_steps": 1},
                                               "inference": {"steps": 2, "restarts": 2}}, any_shape=True))
registry.register_family(registry.Family("manifold_classifier", _build_robust,
                                         **classifier_io.hooks(lambda model: model.classifier),
                                         tiny={"config": {"attack_steps": 1, "pairs": 2}}))
registry.register_presets(presets.TEMPLATE, presets.VARIANTS)
registry.register_presets(presets.MANIFOLD_TEMPLATE)

__all__ = ["WGANGP", "build_defended"]
