"""Shared purification blocks: the latent search, `Purifier`, detection scores, Deep Image Prior.

`DefendedClassifier` (tfdefense.defended) applies a detection score and its threshold.
"""

from tfdefense.purification.dip import DeepImagePrior, deep_image_prior
from tfdefense.purification.detector import detection_scores, roc_curve, threshold_at_fpr
from tfdefense.purification.purifier import Purifier
from tfdefense.purification.search import SearchResult, latent_search, random_codes

__all__ = ["DeepImagePrior", "Purifier", "deep_image_prior", "SearchResult", "detection_scores", "latent_search", "random_codes",
           "roc_curve", "threshold_at_fpr"]
