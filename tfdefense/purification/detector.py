"""Detectors that flag inputs by a reconstruction error (MagNet-style), and their statistics.

`ReconstructionDetector` scores the distance between x and an autoencoder's
reconstruction (G(F(x)) for AE-GAN+rs, MagNet's autoencoder);
`PurificationErrorDetector` reads the purifier's own final error (INC).
Inputs scoring above a threshold chosen on clean validation data at a
target false-positive rate are flagged.

Example:
    >>> scores = detection_scores(x, reconstruct(x), metric="l1")     # doctest: +SKIP
    >>> threshold = threshold_at_fpr(clean_scores, fpr=0.05)          # doctest: +SKIP

Reference:
    AE-GAN+rs Section 4.4 and Appendix F (L1 beats MSE on MNIST);
    Meng & Chen, MagNet (2017).
"""

import keras
import numpy as np
import tensorflow as tf

from tfdefense.defense.contract import DetectorLayer
from tfdefense.defense.serialization import deserialize_parts, serialize_parts

METRICS = ("mse", "l1")


def detection_scores(x, x_hat, metric="l1"):
    """Per-image reconstruction error: mean squared ("mse") or mean absolute ("l1")."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    diff = tf.cast(x_hat, tf.float32) - tf.cast(x, tf.float32)
    per_pixel = tf.square(diff) if metric == "mse" else tf.abs(diff)
    return tf.reduce_mean(per_pixel, axis=[1, 2, 3])


def threshold_at_fpr(clean_scores, fpr=0.05):
    """The threshold that flags a fraction ``fpr`` of clean scores."""
    clean_scores = np.asarray(clean_scores, np.float64)
    if clean_scores.size == 0 or not np.all(np.isfinite(clean_scores)):
        raise ValueError("clean_scores must be a non-empty array of finite numbers.")
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}.")
    return float(np.quantile(clean_scores, 1.0 - fpr))


def roc_curve(clean_scores, adv_scores):
    """False/true positive rates over all thresholds, and the AUC.

    Returns:
        ``(fpr, tpr, thresholds, auc)`` with numpy arrays; the positive class is
        "adversarial".
    """
    clean_scores, adv_scores = np.asarray(clean_scores), np.asarray(adv_scores)
    thresholds = np.unique(np.concatenate([clean_scores, adv_scores]))[::-1]
    fpr = np.array([0.0] + [np.mean(clean_scores >= t) for t in thresholds])
    tpr = np.array([0.0] + [np.mean(adv_scores >= t) for t in thresholds])
    auc = float(np.trapezoid(tpr, fpr))
    return fpr, tpr, np.concatenate([[np.inf], thresholds]), auc


@keras.saving.register_keras_serializable(package="tfdefense")
class ReconstructionDetector(DetectorLayer):
    """Flags inputs an autoencoder reconstructs badly: score = error(x, AE(x)).

    Differentiable, so detector-aware attacks put it in their loss.

    Args:
        autoencoder: images -> reconstructions (called with ``training=False``);
            None scores against the defense's purifier's surrogate (G(F(x))
            for AE-GAN+rs, the reformer for MagNet), which shares its networks.
        metric: "l1" (mean absolute) or "mse" (mean squared) per image.
        threshold, bypass, rejects: see `tfdefense.contract.DetectorLayer`.

    Example:
        >>> detector = ReconstructionDetector(autoencoder, "mse", threshold=0.01)   # doctest: +SKIP
        >>> detector.score(x), detector.flag(detector.score(x))                     # doctest: +SKIP
    """

    def __init__(self, autoencoder=None, metric="l1", threshold=None, bypass=False, rejects=True, **kwargs):
        kwargs.setdefault("name", metric)
        super().__init__(threshold=threshold, bypass=bypass, rejects=rejects, **kwargs)
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
        self.autoencoder = autoencoder
        self.metric = metric

    def score(self, x, purification=None, seed=0):
        if self.autoencoder is not None:
            return detection_scores(x, self.autoencoder(x, training=False), self.metric)
        if getattr(self, "_surrogate", None) is None:
            raise ValueError("ReconstructionDetector without an autoencoder scores against a purifier's "
                             "surrogate; use it inside a DefendedClassifier that has a purifier.")
        return detection_scores(x, self._surrogate(x), self.metric)

    @property
    def uses_surrogate(self):
        return self.autoencoder is None

    def flops(self):
        """Its autoencoder once, or the purifier's surrogate once when it scores against that."""
        return super().flops() if self.autoencoder is not None else int(getattr(self, "_surrogate_flops", 0))

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, ("autoencoder",)))
        config["metric"] = self.metric
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, ("autoencoder",)))


@keras.saving.register_keras_serializable(package="tfdefense")
class PurificationErrorDetector(DetectorLayer):
    """Flags inputs whose purification left a large error (INC: the best search error;
    PuVAE: the smallest RMSE among its class-conditional reconstructions).

    Its score comes out of the purifier, so it is read after purifying
    (``needs_purification``). It is differentiable exactly when the purifier
    is (PuVAE yes, a latent search no); then a detector-aware attack
    differentiates it, purifying the input itself at seed 0.
    """

    needs_purification = True

    def __init__(self, threshold=None, bypass=False, rejects=True, **kwargs):
        kwargs.setdefault("name", "purification_error")
        super().__init__(threshold=threshold, bypass=bypass, rejects=rejects, **kwargs)

    def bind(self, purifier, classifier=None, surrogate=None):
        super().bind(purifier, classifier, surrogate)
        # Bound method only: the purifier is tracked (and saved) once, by the defense.
        self._purify = None if purifier is None else purifier.__call__

    @property
    def differentiable(self):
        """Exactly when the purifier whose error it reads is differentiable (False until bound to one)."""
        purify = getattr(self, "_purify", None)
        return bool(purify is not None and purify.__self__.differentiable)

    def score(self, x, purification=None, seed=0):
        if purification is None and self.differentiable:
            purification = self._purify(x, seed=seed)
        if purification is None or "errors" not in purification:
            raise ValueError("PurificationErrorDetector scores the purifier's 'errors'; pass its output.")
        return tf.cast(purification["errors"], tf.float32)
