"""Shared purification blocks every family may use: purifiers and detectors
that fill in the defense contract (`tfdefense.contract`), and their kernels.

* purifiers: `LatentSearchPurifier` (latent search: AE-GAN+rs, Defense-GAN),
  `ModelPurifier` (one forward pass: MagNet's reformer, APE-GAN),
  `DeepImagePrior`;
* detectors: `ReconstructionDetector` (error against an autoencoder),
  `PurificationErrorDetector` (the purifier's own final error, INC);
* kernels and statistics: `latent_search`, `deep_image_prior`,
  `detection_scores`, `threshold_at_fpr`, `roc_curve`.
"""

from tfdefense.purification.detector import (PurificationErrorDetector, ReconstructionDetector, detection_scores,
                                             roc_curve, threshold_at_fpr)
from tfdefense.purification.dip import DeepImagePrior, deep_image_prior
from tfdefense.purification.purifier import LatentSearchPurifier, Purifier
from tfdefense.purification.reformer import ModelPurifier
from tfdefense.purification.search import SearchResult, latent_search, random_codes

__all__ = ["DeepImagePrior", "LatentSearchPurifier", "ModelPurifier", "PurificationErrorDetector", "Purifier",
           "ReconstructionDetector",
           "SearchResult", "deep_image_prior", "detection_scores", "latent_search", "random_codes", "roc_curve",
           "threshold_at_fpr"]
