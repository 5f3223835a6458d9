"""The DDPM noise schedule and the respaced reverse step, as TensorFlow ops.

Forward: ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) e`` with
``abar_t = prod_{s<=t} (1 - beta_s)`` and betas linear from 1e-4 to 0.02
over T=1000 steps (Ho et al. 2020). Reverse from ``t`` to an earlier
``s``: the DDIM update (Song et al. 2021) with noise scale ``eta``; eta=1 is
the respaced ancestral DDPM sampler, eta=0 the deterministic DDIM one.

Example:
    >>> abar = alpha_bars(1000)
    >>> round(float(abar[0]), 4), round(float(abar[-1]), 5)
    (0.9999, 4e-05)
"""

import numpy as np
import tensorflow as tf


def alpha_bars(timesteps=1000, beta_start=1e-4, beta_end=0.02):
    """abar_t for t = 0..T-1 (float32 numpy)."""
    betas = np.linspace(beta_start, beta_end, timesteps, dtype=np.float64)
    return np.cumprod(1.0 - betas).astype(np.float32)


def diffuse(x0, abar_t, noise):
    """x_t from x_0 in [-1, 1], with ``abar_t`` broadcastable to it."""
    return tf.sqrt(abar_t) * x0 + tf.sqrt(1.0 - abar_t) * noise


def reverse_coefficients(path, abar):
    """The float32 scalars of each reverse step ``t -> s`` along ``path`` (an abar index of -1 is the clean
    image, abar 1): rows ``[abar_t, 1 - abar_t, abar_s, 1 - abar_s, (1 - abar_s) / (1 - abar_t) *
    (1 - abar_t / abar_s)]``, [len(path) - 1, 5], computed in float64 and rounded once.

    Example:
        >>> reverse_coefficients([5, -1], alpha_bars(10)).shape
        (1, 5)
    """
    a = np.array([1.0 if t < 0 else float(abar[t]) for t in path], np.float64)
    a_t, a_s = a[:-1], a[1:]
    return np.stack([a_t, 1.0 - a_t, a_s, 1.0 - a_s, (1.0 - a_s) / (1.0 - a_t) * (1.0 - a_t / a_s)],
                    axis=1).astype(np.float32)


def reverse_step(x_t, eps, coefficients, eta, noise):
    """One reverse step with one row of `reverse_coefficients`: the clipped x_0 estimate, then the
    DDIM/DDPM update."""
    abar_t, rest_t, abar_s, rest_s, ratio = tf.unstack(coefficients)
    x0 = tf.clip_by_value((x_t - tf.sqrt(rest_t) * eps) / tf.sqrt(abar_t), -1.0, 1.0)
    eps = (x_t - tf.sqrt(abar_t) * x0) / tf.sqrt(rest_t)  # consistent with the clipped x_0
    sigma = eta * tf.sqrt(ratio)
    direction = tf.sqrt(tf.maximum(rest_s - sigma ** 2, 0.0)) * eps
    return tf.sqrt(abar_s) * x0 + direction + sigma * noise


def respaced(t_star, steps):
    """The ``steps`` + 1 timesteps a reverse run visits, from ``t_star`` down to -1 (the clean image):
    evenly spaced integers (``t_star`` >= ``steps`` - 1 so none repeats)."""
    if steps < 1 or t_star < steps - 1:
        raise ValueError(f"need 1 <= steps <= t_star + 1; got t_star={t_star}, steps={steps}.")
    return [int(round(v)) for v in np.linspace(t_star, -1, steps + 1)]
