"""Attacks as plain functions over CleverHans 4, batched, on logits functions.

Every attack has the form ``fn(model_fn, x, y, *, ..., clip_min, clip_max)``
where ``model_fn`` maps a float32 batch to logits; it returns numpy
adversarial images. Settings are checked up front with ``ValueError``.

Example:
    >>> from tfdefense import attacks
    >>> x_adv = attacks.fgsm(classifier, x, y, eps=0.3)          # doctest: +SKIP
    >>> x_adv = attacks.pgd(classifier, x, y, eps=0.3, seed=0)   # doctest: +SKIP

Reference:
    Papernot et al., Technical report on the CleverHans library (2018).
"""

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks import carlini_wagner_l2 as _cw
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

from tfdefense import progress


def _check(x, y, eps=None, clip_min=0.0, clip_max=1.0):
    x = np.asarray(x, np.float32)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch [N, H, W, C], got shape {x.shape}.")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
    if eps is not None and not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}.")
    if not clip_min < clip_max:
        raise ValueError(f"clip_min {clip_min} must be below clip_max {clip_max}.")
    return x, None if y is None else np.asarray(y, np.int64)


def _batched(fn, x, y, batch_size, desc):
    out = np.empty_like(x)
    for start in progress.bar(range(0, len(x), batch_size), desc=desc):
        sl = slice(start, start + batch_size)
        out[sl] = np.asarray(fn(tf.constant(x[sl]), None if y is None else tf.constant(y[sl])))
    return out


def fgsm(model_fn, x, y=None, *, eps, norm=np.inf, clip_min=0.0, clip_max=1.0, batch_size=256):
    """Fast gradient sign method (Goodfellow et al., 2014), untargeted."""
    x, y = _check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    return _batched(lambda xb, yb: fast_gradient_method(model_fn, xb, eps, norm, clip_min=clip_min,
                                                        clip_max=clip_max, y=yb), x, y, batch_size, "fgsm")


def pgd(model_fn, x, y=None, *, eps, eps_iter=0.01, nb_iter=40, norm=np.inf, rand_init=True, seed=0,
        clip_min=0.0, clip_max=1.0, batch_size=256):
    """Projected gradient descent with a random start (Madry et al., 2017)."""
    x, y = _check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    if not 0 < eps_iter:
        raise ValueError(f"eps_iter must be > 0, got {eps_iter!r}.")
    tf.random.set_seed(seed)  # CleverHans draws the random start from the global generator
    return _batched(lambda xb, yb: projected_gradient_descent(
        model_fn, xb, eps, min(eps_iter, eps), nb_iter, norm, clip_min=clip_min, clip_max=clip_max, y=yb,
        rand_init=rand_init, sanity_checks=False), x, y, batch_size, "pgd")


class _CarliniWagnerL2(_cw.CarliniWagnerL2):
    """CleverHans 4.0.0's CW-L2 with its Keras 3 failures fixed.

    Upstream (a) calls ``optimizer.variables()``, a property in Keras 3; (b)
    reuses one optimizer for the new ``modifier`` variable of every batch; (c)
    builds ``const`` with the image's shape instead of one per example, which
    mixes the examples' losses. This class replaces only the per-batch loop.
    """

    def _attack(self, x):
        y = tf.one_hot(self.y_batch, self.num_classes) if self.y_batch is not None else None
        if y is None:
            y = tf.one_hot(tf.argmax(self.model_fn(x), axis=1), self.num_classes)
        original = tf.cast(x, tf.float32)
        n = original.shape[0]
        w = tf.atanh((tf.clip_by_value((original - self.clip_min) / (self.clip_max - self.clip_min), 0, 1)
                      * 2 - 1) * 0.999999)
        lower, upper = np.zeros(n), np.full(n, 1e10)
        const = np.full(n, self.initial_const)
        best_l2, best_attack = np.full(n, 1e10), original.numpy()
        labels = np.argmax(y.numpy(), axis=1)
        modifier = tf.Variable(tf.zeros_like(original))
        for _ in range(self.binary_search_steps):
            modifier.assign(tf.zeros_like(original))
            optimizer = tf.keras.optimizers.Adam(self.learning_rate)  # fresh state for every search step
            success = np.zeros(n, bool)
            for _ in range(self.max_iterations):
                x_new, grads, _, preds, l2 = self.gradient(w, y, modifier, tf.constant(const, tf.float32))
                optimizer.apply_gradients([(grads, modifier)])
                pred = np.argmax(preds.numpy() + (0 if self.targeted else self.confidence) * y.numpy(), axis=1)
                fooled = (pred == labels) if self.targeted else (pred != labels)
                better = fooled & (l2.numpy() < best_l2)
                best_l2 = np.where(better, l2.numpy(), best_l2)
                best_attack[better] = x_new.numpy()[better]
                success |= fooled
            # Binary search on the per-example constant.
            upper = np.where(success, np.minimum(upper, const), upper)
            lower = np.where(success, lower, np.maximum(lower, const))
            const = np.where(upper < 1e9, (lower + upper) / 2, const * 10)
        return tf.constant(best_attack)


def cw_l2(model_fn, x, y=None, *, confidence=0.0, learning_rate=0.1, binary_search_steps=5,
          max_iterations=100, initial_const=10.0, clip_min=0.0, clip_max=1.0, batch_size=128):
    """Carlini-Wagner L2 (2017) through CleverHans, with the Keras 3 fixes.

    Examples where no adversarial is found are returned unchanged.
    """
    x, y = _check(x, y, None, clip_min, clip_max)
    if binary_search_steps < 1 or max_iterations < 1:
        raise ValueError("binary_search_steps and max_iterations must be >= 1.")
    num_classes = int(model_fn(tf.constant(x[:1])).shape[-1])

    def run(xb, yb):
        attack = _CarliniWagnerL2(model_fn, batch_size=len(xb), confidence=confidence, learning_rate=learning_rate,
                                  binary_search_steps=binary_search_steps, max_iterations=max_iterations,
                                  abort_early=False, initial_const=initial_const, clip_min=clip_min,
                                  clip_max=clip_max)
        attack.y_batch, attack.num_classes = yb, num_classes
        return attack._attack(xb)

    return _batched(run, x, y, batch_size, "cw_l2")


ATTACKS = {"fgsm": fgsm, "pgd": pgd, "cw": cw_l2}
