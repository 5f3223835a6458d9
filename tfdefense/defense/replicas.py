"""What a family's ``train_step`` needs to be right under a `tf.distribute` strategy, and right without one.

Keras sums the replicas' gradients before the optimizer applies them. A
``train_step`` computes its losses as means over the batch its replica sees,
so the gradient it hands the optimizer must be divided by the number of
replicas: the summed result is then the gradient of the loss averaged over
the global batch, as one device would compute it (`global_gradients`,
`descend`). Without a strategy there is one replica and nothing changes.

`BatchNormalization` normalises with the global batch's statistics under several
replicas, as one device would.

A `keras.random.SeedGenerator` is one mirrored variable: every replica reads
the same state and would draw the same noise for its own images.
`ReplicaSeedGenerator` offsets the seed by the replica's index, so replica r
draws its own stream, replica 0 the stream one device draws, and each is a
function of the generator's state only (reproducible, and resumed exactly
from a checkpoint).

Example:
    >>> with tf.GradientTape() as tape:                                        # doctest: +SKIP
    ...     loss = tf.reduce_mean(tf.square(model(x, training=True) - x))
    >>> descend(model.optimizer, tape, loss, model.trainable_variables)        # doctest: +SKIP
"""

import keras
import tensorflow as tf

REPLICA_STRIDE = 7919  # replica r's seeds are offset by r * REPLICA_STRIDE in the seed's first component


def num_replicas():
    """Replicas of the current `tf.distribute` strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def global_gradients(tape, loss, variables):
    """The gradients of ``loss`` (a mean over this replica's batch) scaled to the global batch."""
    grads = tape.gradient(loss, variables)
    replicas = num_replicas()
    if replicas == 1:
        return grads
    return [None if g is None else g / tf.cast(replicas, g.dtype) for g in grads]


def descend(optimizer, tape, loss, variables):
    """One step of ``optimizer`` on ``loss`` with `global_gradients`."""
    optimizer.apply_gradients(zip(global_gradients(tape, loss, variables), variables))


class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A `keras.random.SeedGenerator` whose seeds differ by replica (replica 0: the plain generator's)."""

    def next(self, ordered=True):
        seed = super().next(ordered)
        context = tf.distribute.get_replica_context()
        if context is None or num_replicas() == 1:
            return seed
        replica = tf.cast(context.replica_id_in_sync_group, seed.dtype)
        return seed + tf.stack([replica * REPLICA_STRIDE, tf.zeros_like(replica)])


@keras.saving.register_keras_serializable("tfdefense")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` (the same name, so published weight files keep their paths) whose
    training statistics are the global batch's under a strategy of
    several replicas (Keras' ``synchronized=True``, an all-reduce of the moments), so two replicas normalise
    as one device would; on one device, Keras' plain moments."""

    def call(self, inputs, training=None, mask=None):
        self.synchronized = num_replicas() > 1
        return super().call(inputs, training=training, mask=mask)
