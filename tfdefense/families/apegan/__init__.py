"""APE-GAN (Shen et al. 2017): a generator that removes adversarial perturbations in one forward pass.

The generator is trained against a discriminator on FGSM examples (eps 0.3)
of the classifier it protects; at inference every input goes through it
once (`tfdefense.purification.ModelPurifier`), so the defense is cheap and
differentiable end to end: white-box attacks use its true gradient.

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("apegan_mnist")      # doctest: +SKIP
    >>> out = model.defend(x)                       # doctest: +SKIP

Reference:
    Shen, Ji, Zhang, Zuo, Wang: APE-GAN: Adversarial Perturbation Elimination
    with GAN (2017), Shen et al. 2017: Tables 1-3 and 6, Eqs. 10-14, Section 4.1.3.
"""

import os

import keras

from tfdefense import datasets
from tfdefense.utils import batching
from tfdefense.zoo import registry
from tfdefense.families.apegan import builders, losses, presets
from tfdefense.families.apegan.model import APEGAN
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.purification import ModelPurifier

GENERATOR = "generator.weights.h5"


def _build_for_training(entry, config):
    model = APEGAN.from_config_dict(entry["config"], registry.load_classifier(entry["config"]["classifier"]))
    adam = lambda: keras.optimizers.Adam(config["learning_rate"], beta_1=0.5)  # noqa: E731
    model.compile(d_optimizer=adam(), g_optimizer=adam())
    return model


def _save(model, entry, out_dir):
    model.generator.save_weights(os.path.join(out_dir, GENERATOR))
    return [GENERATOR]


def _measure(model, entry):
    x, y = datasets.load(entry["metadata"]["dataset"], "test")
    errors = batching.per_image_mse(lambda b: model(b, training=False), x)
    return {"reconstruction_mse_clean": {"value": round(float(errors.mean()), 6), "split": "test",
                                         "n": int(len(x))}}


def build_defended(generator, classifier, name="apegan"):
    """APE-GAN from its parts: every input through the generator, then the classifier."""
    return DefendedClassifier(classifier, ModelPurifier(generator), name=name)


def _load(entry, folder, classifier):
    generator = builders.generator(entry["config"]["filters"], registry.data_shape(entry)[0])
    generator.load_weights(os.path.join(folder, GENERATOR))
    return build_defended(generator, registry.load_classifier(classifier), name=entry["name"])


def _warm_start(model, entry, folder):
    """The published generator; the discriminator and the optimizers start fresh."""
    model.generator.load_weights(os.path.join(folder, GENERATOR))


registry.register_family(registry.Family("apegan", _build_for_training, _save, _measure, _load,
                                         inference={"classifier": None}, warm_start=_warm_start,
                                         tiny={"config": {"filters": 2}}, any_shape=True))
registry.register_presets(presets.TEMPLATE, presets.VARIANTS)

__all__ = ["APEGAN", "build_defended", "builders", "losses"]
