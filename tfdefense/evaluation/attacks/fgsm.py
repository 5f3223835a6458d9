"""Fast gradient sign method (Goodfellow et al. 2014), through CleverHans."""

import numpy as np
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method

from tfdefense.evaluation.attacks.common import batched, check


def fgsm(model_fn, x, y=None, *, eps, norm=np.inf, clip_min=0.0, clip_max=1.0, batch_size=256):
    """Fast gradient sign method (Goodfellow et al., 2014), untargeted."""
    x, y = check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    return batched(lambda xb, yb: fast_gradient_method(model_fn, xb, eps, norm, clip_min=clip_min,
                                                        clip_max=clip_max, y=yb), x, y, batch_size, "fgsm")
