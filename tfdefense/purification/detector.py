"""Reconstruction-error detection of adversarial inputs (MagNet-style).

The score of an image is the distance between x and its cheap reconstruction
G(F(x)); inputs scoring above a threshold chosen on clean validation data at
a target false-positive rate are flagged.

Example:
    >>> scores = detection_scores(x, reconstruct(x), metric="l1")     # doctest: +SKIP
    >>> threshold = threshold_at_fpr(clean_scores, fpr=0.05)          # doctest: +SKIP

Reference:
    AE-GAN+rs Section 4.4 and Appendix F (L1 beats MSE on MNIST);
    Meng & Chen, MagNet (2017).
"""

import numpy as np
import tensorflow as tf

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
