"""Carlini-Wagner (2017): L2 through a patched CleverHans class, Linf batched here."""

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks import carlini_wagner_l2 as _cw

from tfdefense.evaluation.attacks.common import batched, check


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
    x, y = check(x, y, None, clip_min, clip_max)
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

    return batched(run, x, y, batch_size, "cw_l2")


def cw_linf(model_fn, x, y=None, *, confidence=0.0, learning_rate=0.01, max_iter=50, rounds=20,
            initial_const=0.1, largest_const=20.0, tau_decrease=0.9, clip_min=0.0, clip_max=1.0, batch_size=128):
    """Carlini-Wagner Linf (2017), batched (ART's runs one image at a time: hours for a few hundred).

    Per image, Carlini's algorithm minimises ``c * f(x + d) + sum(relu(|d| - tau))`` where f is the
    margin max(Z_y - max_{j != y} Z_j, -confidence) and tau a bound that starts at 1. After each
    round of ``max_iter`` Adam steps, an image whose example is misclassified records it (when its
    Linf distortion is the smallest yet) and tightens tau to ``tau_decrease`` times that distortion;
    one that is not doubles c, and stops once c passes ``largest_const``. All images of a batch
    advance together, for at most ``rounds`` rounds, warm-started from the previous round.

    Returns the smallest-Linf example found per image that another class's logit beats the label's by
    more than ``confidence``; images with none come back unchanged.
    """
    x, y = check(x, y, None, clip_min, clip_max)
    if max_iter < 1 or rounds < 1:
        raise ValueError(f"max_iter and rounds must be >= 1, got {max_iter}, {rounds}.")
    num_classes = int(model_fn(tf.constant(x[:1])).shape[-1])

    @tf.function(reduce_retracing=True)
    def optimise(x0, onehot, delta, tau, const):
        m, v = tf.zeros_like(delta), tf.zeros_like(delta)
        for i in tf.range(1, max_iter + 1):
            with tf.GradientTape() as tape:
                tape.watch(delta)
                z = tf.cast(model_fn(tf.clip_by_value(x0 + delta, clip_min, clip_max)), tf.float32)
                real = tf.reduce_sum(onehot * z, axis=1)
                other = tf.reduce_max(z - 1e9 * onehot, axis=1)
                margin = tf.nn.relu(real - other + confidence)
                excess = tf.reduce_sum(tf.nn.relu(tf.abs(delta) - tau[:, None, None, None]), axis=[1, 2, 3])
                loss = tf.reduce_sum(const * margin + excess)
            g = tape.gradient(loss, delta)
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * tf.square(g)
            t = tf.cast(i, tf.float32)
            step = learning_rate * (m / (1 - 0.9 ** t)) / (tf.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
            delta = tf.clip_by_value(x0 + delta - step, clip_min, clip_max) - x0
        return delta

    def run(xb, yb):
        labels = tf.argmax(model_fn(xb), axis=1) if yb is None else tf.cast(yb, tf.int64)
        onehot = tf.one_hot(labels, num_classes)
        n = int(xb.shape[0])
        delta, tau = tf.zeros_like(xb), tf.ones([n])
        const, stopped = tf.fill([n], float(initial_const)), tf.zeros([n], tf.bool)
        best, best_linf = xb, tf.fill([n], np.inf)
        for _ in range(rounds):
            delta = optimise(xb, onehot, delta, tau, const)
            adv = tf.clip_by_value(xb + delta, clip_min, clip_max)
            z = tf.cast(model_fn(adv), tf.float32)  # fooled: another logit beats the label's by > confidence
            fooled = tf.reduce_max(z - 1e9 * onehot, axis=1) - tf.reduce_sum(onehot * z, axis=1) > confidence
            linf = tf.reduce_max(tf.abs(adv - xb), axis=[1, 2, 3])
            better = fooled & (linf < best_linf) & ~stopped
            best = tf.where(better[:, None, None, None], adv, best)
            best_linf = tf.where(better, linf, best_linf)
            tau = tf.where(fooled, tf.minimum(tau, linf) * tau_decrease, tau)
            const = tf.where(fooled, const, const * 2.0)
            stopped = stopped | (const > largest_const)
            if bool(tf.reduce_all(stopped)):
                break
        return best

    return batched(run, x, y, batch_size, "cw_linf")
