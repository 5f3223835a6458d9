"""DeepFool (Moosavi-Dezfooli et al. 2016), L2 or Linf, batched: CleverHans 4 has none."""

import tensorflow as tf

from tfdefense.evaluation.attacks.common import batched, check


def deepfool(model_fn, x, y=None, *, norm="l2", overshoot=0.02, max_iter=50, num_classes=10, eps=None,
             clip_min=0.0, clip_max=1.0, batch_size=128):
    """DeepFool (Moosavi-Dezfooli et al., 2016), L2 or Linf, batched; CleverHans 4 has none.

    Each step linearises the classifier around the current point and moves to
    the nearest linearised decision boundary among ``num_classes`` classes,
    times (1 + overshoot). Images already misclassified stop moving. With
    ``eps`` the final perturbation is clipped to that norm ball.
    """
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm must be 'l2' or 'linf', got {norm!r}.")
    x, y = check(x, y, eps, clip_min, clip_max)
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}.")
    if eps == 0:
        return x.copy()

    def run(xb, yb):
        labels = tf.argmax(model_fn(xb), axis=1) if yb is None else tf.cast(yb, tf.int64)
        return _deepfool_batch(model_fn, xb, labels, norm, overshoot, max_iter, num_classes, eps, clip_min, clip_max)

    return batched(run, x, y, batch_size, f"deepfool_{norm}")


def _deepfool_batch(model_fn, x, labels, norm, overshoot, max_iter, num_classes, eps, clip_min, clip_max):
    x0 = tf.convert_to_tensor(x)
    r_total = tf.zeros_like(x0)
    onehot = tf.one_hot(labels, num_classes)

    @tf.function(reduce_retracing=True)
    def logits_and_gradients(x_adv):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x_adv)
            logits = model_fn(x_adv)
            per_class = [logits[:, k] for k in range(num_classes)]
        return logits, tf.stack([tape.gradient(per_class[k], x_adv) for k in range(num_classes)], axis=1)

    for _ in range(max_iter):
        x_adv = tf.clip_by_value(x0 + (1 + overshoot) * r_total, clip_min, clip_max)
        logits, grads = logits_and_gradients(x_adv)
        active = tf.equal(tf.argmax(logits, 1), labels)
        if not bool(tf.reduce_any(active)):
            break
        f_true = tf.reduce_sum(logits * onehot, 1, keepdims=True)
        g_true = tf.einsum("bk,bkhwc->bhwc", onehot, grads)[:, None]
        w = grads - g_true                                # [B, K, H, W, C]
        f = logits - f_true                               # [B, K]
        flat = tf.reshape(w, [tf.shape(w)[0], num_classes, -1])
        w_norm = tf.norm(flat, axis=2) if norm == "l2" else tf.reduce_sum(tf.abs(flat), axis=2)
        dist = tf.abs(f) / (w_norm + 1e-8) + onehot * 1e10  # never step towards the true class
        k_best = tf.argmin(dist, axis=1)
        w_best = tf.gather(w, k_best, batch_dims=1)
        d_best = tf.gather(dist, k_best, batch_dims=1)[:, None, None, None]
        if norm == "l2":
            w_flat = tf.reshape(w_best, [tf.shape(w_best)[0], -1])
            step = (d_best + 1e-4) * w_best / (tf.norm(w_flat, axis=1)[:, None, None, None] + 1e-8)
        else:
            step = (d_best + 1e-4) * tf.sign(w_best)
        r_total += tf.where(active[:, None, None, None], step, tf.zeros_like(step))
    delta = (1 + overshoot) * r_total
    if eps is not None:
        if norm == "l2":
            n = tf.norm(tf.reshape(delta, [tf.shape(delta)[0], -1]), axis=1)[:, None, None, None]
            delta = delta * tf.minimum(1.0, eps / (n + 1e-12))
        else:
            delta = tf.clip_by_value(delta, -eps, eps)
    return tf.clip_by_value(x0 + delta, clip_min, clip_max)
