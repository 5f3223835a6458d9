"""Corruptions and benign noise, not attacks: the same images under every threat model."""

import numpy as np

from tfdefense.evaluation.attacks.common import check


def half_mask(model_fn, x, y=None, *, side="bottom", value=0.0):
    """Blocks half of each image (sets it to ``value``): the Half-Masked corruption of Table 3 of
    AE-GAN+rs (anon.), which shows what a search adds when the encoder's code is far off.

    It ignores ``model_fn`` (the corruption is the same under every threat model).
    """
    x, _ = check(x, y)
    sides = ("top", "bottom", "left", "right")
    if side not in sides:
        raise ValueError(f"side must be one of {sides}, got {side!r}.")
    out = x.copy()
    h, w = x.shape[1] // 2, x.shape[2] // 2
    region = {"top": np.s_[:, :h], "bottom": np.s_[:, h:], "left": np.s_[:, :, :w], "right": np.s_[:, :, w:]}[side]
    out[region] = value
    return out


def gaussian_noise(model_fn, x, y=None, *, variance=0.05, seed=0):
    """Benign input: white Gaussian noise of mean 0 and ``variance`` added to
    each pixel, clipped back to the valid range [0, 1] (Shen et al. 2017 Table 2,
    variance 0.05). It ignores ``model_fn``, like `half_mask`.
    """
    x, _ = check(x, y)
    if not variance >= 0:
        raise ValueError(f"variance must be >= 0, got {variance!r}.")
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(variance), size=x.shape).astype(np.float32)
    return np.clip(x + noise, 0.0, 1.0)
