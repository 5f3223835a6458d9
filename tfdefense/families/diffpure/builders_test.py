import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdefense.families.diffpure import builders


@pytest.mark.parametrize("shape, groups", [((4, 7, 7, 16), 8), ((3, 6, 10, 8), 4), ((2, 5, 12), 3)])
def test_group_normalization_matches_keras(shape, groups):
    """Same weights, same output and input gradient as keras.layers.GroupNormalization (a mean far from 0
    tests the E[x^2] - E[x]^2 variance)."""
    x = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, shape).astype("float32"))
    ours, theirs = builders.GroupNormalization(groups), keras.layers.GroupNormalization(groups)
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(1)
    for layer in (ours, theirs):
        layer.gamma.assign(rng.uniform(0.5, 1.5, shape[-1]))
        layer.beta.assign(rng.uniform(-1, 1, shape[-1]))
        rng = np.random.default_rng(1)
    outputs, grads = [], []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x)
            loss = tf.reduce_sum(tf.sin(out))
        outputs.append(out.numpy())
        grads.append(tape.gradient(loss, x).numpy())
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-5)


def test_group_normalization_under_bfloat16_keeps_float32_statistics():
    x = np.random.default_rng(0).normal(0.5, 1.0, (2, 8, 8, 8)).astype("float32")
    layer = builders.GroupNormalization(4, dtype="mixed_bfloat16")
    out = layer(x)
    assert out.dtype == "bfloat16"
    np.testing.assert_allclose(np.asarray(tf.cast(out, tf.float32)),
                               keras.layers.GroupNormalization(4)(x).numpy(), atol=0.05)
