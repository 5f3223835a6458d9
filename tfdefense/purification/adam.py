"""One Adam update on plain tensors, for optimisers written as `tf.while_loop`s
(Deep Image Prior's per-image fit, the min-max attack's codes)."""

import tensorflow as tf

BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8


def adam_update(params, grads, m, v, step, learning_rate):
    """Descends ``grads`` (negate them to ascend); ``step`` counts from 0.

    Returns:
        (params, m, v), each a list like its input.
    """
    t = tf.cast(step + 1, tf.float32)
    m = [BETA1 * a + (1 - BETA1) * g for a, g in zip(m, grads)]
    v = [BETA2 * a + (1 - BETA2) * tf.square(g) for a, g in zip(v, grads)]
    scale = learning_rate * tf.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
    params = [p - scale * a / (tf.sqrt(b) + EPSILON) for p, a, b in zip(params, m, v)]
    return params, m, v
