"""Projected gradient descent (Madry et al. 2017) with restarts, and the basic iterative method
(Kurakin et al. 2016), its variant without a random start; through CleverHans."""

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.basic_iterative_method import basic_iterative_method
from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

from tfdefense.evaluation.attacks.common import batched, check, predicted_labels


def pgd(model_fn, x, y=None, *, eps, eps_iter=0.01, nb_iter=40, norm=np.inf, rand_init=True, restarts=1, seed=0,
        clip_min=0.0, clip_max=1.0, batch_size=256):
    """Projected gradient descent with a random start (Madry et al., 2017).

    With ``restarts`` > 1 (random starts only), each image keeps the first
    restart's example that ``model_fn`` misclassifies (restart r draws its
    start with seed ``seed + r``), else the last one.
    """
    x, y = check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    if not 0 < eps_iter:
        raise ValueError(f"eps_iter must be > 0, got {eps_iter!r}.")
    if restarts < 1 or (restarts > 1 and not rand_init):
        raise ValueError(f"restarts must be >= 1, and > 1 needs rand_init=True; got {restarts}, {rand_init}.")
    target = predicted_labels(model_fn, x, batch_size) if y is None else y
    best, fooled = None, np.zeros(len(x), bool)
    for r in range(restarts):
        tf.random.set_seed(seed + r)  # CleverHans draws the random start from the global generator
        adv = batched(lambda xb, yb: projected_gradient_descent(
            model_fn, xb, eps, min(eps_iter, eps), nb_iter, norm, clip_min=clip_min, clip_max=clip_max, y=yb,
            rand_init=rand_init, sanity_checks=False), x, y, batch_size, f"pgd restart {r + 1}/{restarts}"
            if restarts > 1 else "pgd")
        if restarts == 1:
            return adv
        wrong = predicted_labels(model_fn, adv, batch_size) != target  # one labelling pass per restart
        if best is None:
            best, fooled = adv, wrong
        else:
            take = ~fooled & wrong
            best = np.where(take[:, None, None, None], adv, best)
            fooled |= take
        if fooled.all():
            break
    return best


def bim(model_fn, x, y=None, *, eps, eps_iter=0.01, nb_iter=40, norm=np.inf, clip_min=0.0, clip_max=1.0,
        batch_size=256):
    """Basic iterative method (Kurakin et al., 2016): PGD without a random start."""
    x, y = check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    return batched(lambda xb, yb: basic_iterative_method(
        model_fn, xb, eps, min(eps_iter, eps), nb_iter, norm, clip_min=clip_min, clip_max=clip_max, y=yb,
        sanity_checks=False), x, y, batch_size, "bim")
