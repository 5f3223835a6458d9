"""Momentum iterative method (Dong et al. 2018), through CleverHans."""

import numpy as np
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method

from tfdefense.evaluation.attacks.common import batched, check


def mim(model_fn, x, y=None, *, eps, eps_iter=0.03, nb_iter=20, decay_factor=1.0, norm=np.inf, clip_min=0.0,
        clip_max=1.0, batch_size=256):
    """Momentum iterative method (Dong et al., 2018)."""
    x, y = check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    return batched(lambda xb, yb: momentum_iterative_method(
        model_fn, xb, eps, min(eps_iter, eps), nb_iter, norm, clip_min=clip_min, clip_max=clip_max, y=yb,
        decay_factor=decay_factor, sanity_checks=False), x, y, batch_size, "mim")
