"""PGD adversarial training (Madry et al. 2018): a robust classifier, no purifier, no detector.

The baseline column "Adv. Tr." of AE-GAN+rs (anon.)'s Table 1: classifier A
trained on PGD examples (Linf eps 0.3, 40 steps of 0.01, random start) made
inside each training step. A second recipe, FGSM with a random start
(Wong et al. 2020, one step of 1.25 eps), costs about 20x less and is a
separate entry. Both load as a `DefendedClassifier` with neither role, and
white-box attacks use the classifier's exact gradient.

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("advtrain_a_mnist")      # doctest: +SKIP

Reference:
    Madry et al. (ICLR 2018); Wong, Rice, Kolter (ICLR 2020); AE-GAN+rs (anon.) Table 1.
"""

import keras

from tfdefense.zoo import classifier_io, registry
from tfdefense.families.advtrain import presets
from tfdefense.families.advtrain.model import AdversarialTraining, linf_attack
from tfdefense.defense.networks import build_classifier


def _build_for_training(entry, config):
    c = {k: v for k, v in entry["config"].items() if k not in ("arch", "image_shape", "num_classes")}
    model = AdversarialTraining(build_classifier(**classifier_io.architecture(entry["config"])), seed=config["seed"], **c)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    return model


registry.register_family(registry.Family("advtrain", _build_for_training,
                                         **classifier_io.hooks(lambda model: model.classifier),
                                         tiny={"config": {"arch": "c", "steps": 2, "step_size": 0.1}},
                                         any_shape=True))
registry.register_presets(presets.TEMPLATE, presets.VARIANTS)

__all__ = ["AdversarialTraining", "linf_attack"]
