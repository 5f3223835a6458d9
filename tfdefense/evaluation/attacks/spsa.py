"""SPSA (Uesato et al. 2018): gradient-free, through CleverHans with a Keras 3 adapter."""

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks import spsa as _spsa_lib

from tfdefense.evaluation.attacks.common import check
from tfdefense.utils import progress


class _SPSAAdam(_spsa_lib.SPSAAdam):
    """CleverHans' SPSA optimizer, constructible under Keras 3.

    Upstream passes ``lr=`` to ``keras.optimizers.Adam``, which Keras 3
    rejects; the class only borrows Adam's beta_1, beta_2 and epsilon and does
    its own update with ``self.lr``.
    """

    def __init__(self, lr=0.01, delta=0.01, num_samples=128, num_iters=1):
        tf.keras.optimizers.Adam.__init__(self, learning_rate=lr)
        if num_samples % 2:
            raise ValueError(f"spsa_samples must be even, got {num_samples}.")
        self.lr = lr
        self._delta = delta
        self._num_samples = num_samples // 2  # mirrored +/- delta
        self._num_iters = num_iters
        self._compare_to_analytic_grad = False


def _spsa_one(model_fn, x, y, eps, nb_iter, clip_min, clip_max, learning_rate, delta, spsa_samples):
    def loss_fn(xb, label):  # untargeted: minimise minus the margin
        logits = model_fn(xb)
        return -_spsa_lib.margin_logit_loss(logits, label, nb_classes=logits.shape[-1])

    optimizer = _SPSAAdam(lr=learning_rate, delta=delta, num_samples=spsa_samples)
    return _spsa_lib.projected_optimization(loss_fn, x, y, eps, nb_iter, optimizer, clip_min, clip_max)


def spsa(model_fn, x, y, *, eps, nb_iter=20, spsa_samples=64, learning_rate=0.01, delta=0.01, seed=0,
         clip_min=0.0, clip_max=1.0):
    """SPSA (Uesato et al., 2018): gradient-free, so it sees through masked gradients.

    One image at a time (CleverHans' implementation requires it), through a
    small adapter for Keras 3 (see `_SPSAAdam`); costs
    ``nb_iter * spsa_samples`` forward passes per image.
    """
    x, y = check(x, y, eps, clip_min, clip_max)
    if y is None:
        raise ValueError("spsa needs the true labels y.")
    if eps == 0:
        return x.copy()
    tf.random.set_seed(seed)
    out = np.empty_like(x)
    for i in progress.bar(range(len(x)), desc="spsa"):
        out[i] = np.asarray(_spsa_one(model_fn, tf.constant(x[i:i + 1]), tf.constant(y[i:i + 1]), eps, nb_iter,
                                      clip_min, clip_max, learning_rate, delta, spsa_samples))[0]
    return out
