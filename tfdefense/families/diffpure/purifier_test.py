import numpy as np
import tensorflow as tf

from tfdefense.defense import contract
from tfdefense.families.diffpure import builders
from tfdefense.families.diffpure.purifier import DiffusionPurifier


def _graph_nodes(fn, x):
    graph = tf.function(fn).get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph.as_graph_def()
    return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)


def test_a_served_sampler_is_one_loop_with_the_unrolled_outputs_and_gradient():
    """Traced for serving, the reverse steps are one tf.while_loop: the graph does not grow with the steps,
    and the images are those of the unrolled, checkpointed sampler that attacks differentiate."""
    unet = builders.noise_unet((8, 8, 1), filters=8, multipliers=(1, 2))
    x = tf.constant(np.random.default_rng(0).random((3, 8, 8, 1)), tf.float32)
    short, long = DiffusionPurifier(unet, t_star=20, steps=2), DiffusionPurifier(unet, t_star=20, steps=5)
    unrolled = [_graph_nodes(lambda v, p=p: p.purify(v, seed=1), x) for p in (short, long)]
    with contract.serving_graph():
        served = [_graph_nodes(lambda v, p=p: p.purify(v, seed=1), x) for p in (short, long)]
        loop = tf.function(lambda v: long.purify(v, seed=1))(x)
    assert unrolled[1] > 2 * unrolled[0] and served[1] == served[0], (unrolled, served)
    np.testing.assert_allclose(loop, tf.function(lambda v: long.purify(v, seed=1))(x), atol=1e-6)

    gradients = []
    for checkpoint in (True, False):  # unrolled and checkpointed, or one loop
        long.checkpoint_gradients = checkpoint
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(long.purify(x, seed=1)))
        gradients.append(tape.gradient(loss, x).numpy())
    assert np.abs(gradients[0]).max() > 0
    np.testing.assert_allclose(gradients[0], gradients[1], atol=1e-5)
