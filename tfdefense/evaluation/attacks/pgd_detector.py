"""The zoo's detector-aware PGD: misclassify while keeping every detector under its threshold."""

import numpy as np
import tensorflow as tf

from tfdefense.evaluation.attacks.common import batched, check


def pgd_detector_aware(model_fn, score_fn, threshold, x, y, *, eps, eps_iter=0.01, nb_iter=40, penalty=10.0,
                       seed=0, clip_min=0.0, clip_max=1.0, batch_size=256):
    """PGD that also keeps the detector quiet.

    Ascends cross-entropy(model_fn(x'), y) - penalty * relu(score_fn(x') - threshold)
    with signed steps inside the Linf ball, from a random start. ``score_fn``
    must be differentiable (e.g. the reconstruction error against G(F(x))).
    """
    x, y = check(x, y, eps, clip_min, clip_max)
    if y is None:
        raise ValueError("pgd_detector_aware needs the true labels y.")
    rng = np.random.default_rng(seed)

    @tf.function(reduce_retracing=True)
    def step(x_adv, xb, yb):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            ce = tf.keras.losses.sparse_categorical_crossentropy(yb, model_fn(x_adv), from_logits=True)
            loss = ce - penalty * tf.nn.relu(score_fn(x_adv) - threshold)
        x_adv = x_adv + eps_iter * tf.sign(tape.gradient(loss, x_adv))
        return tf.clip_by_value(tf.clip_by_value(x_adv, xb - eps, xb + eps), clip_min, clip_max)

    def run(xb, yb):
        x_adv = tf.clip_by_value(xb + rng.uniform(-eps, eps, xb.shape).astype(np.float32), clip_min, clip_max)
        for _ in range(nb_iter):
            x_adv = step(x_adv, xb, yb)
        return x_adv

    return batched(run, x, y, batch_size, "pgd_detector_aware")
