"""The classifiers of Table 5 (AE-GAN+rs (anon.), after Defense-GAN): A, B and C.

Several families train or protect them, so they live in `tfdefense.networks`;
this module names them for the classifier family's users.
"""

from tfdefense.defense.networks import BUILDERS, build_classifier, classifier_a, classifier_b, classifier_c

__all__ = ["BUILDERS", "build_classifier", "classifier_a", "classifier_b", "classifier_c"]
