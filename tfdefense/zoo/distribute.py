"""`tfdefense train --strategy`: TensorFlow's own `tf.distribute` strategies, nothing else.

* ``default``: one device, as always;
* ``mirrored``: `tf.distribute.MirroredStrategy`, every GPU of this host (one
  replica on a CPU-only host);
* ``multi_worker``: `tf.distribute.MultiWorkerMirroredStrategy`, the workers
  that ``TF_CONFIG`` lists (a Kubernetes or Slurm job sets it per worker).

``batch_size`` is the global batch: each replica takes its share of every
batch, the families scale their losses to it (`tfdefense.defense.replicas`),
and the card records the strategy, the replicas and the global batch. The
chief (task ``chief``, or ``worker`` 0 when there is none) writes the
checkpoints, the export and the card into the shared ``--workdir``; every
worker restores from them on ``--resume``.

Example:
    >>> strategy = make("mirrored")                                       # doctest: +SKIP
    >>> describe(strategy, "mirrored", global_batch=128)                  # doctest: +SKIP
    {'strategy': 'mirrored', 'replicas': 1, 'workers': 1, 'global_batch': 128, 'per_replica_batch': 128}
"""

import json
import os

STRATEGIES = ("default", "mirrored", "multi_worker")


def make(kind=None):
    """The `tf.distribute.Strategy` named ``kind`` (None: ``default``).

    Raises:
        ValueError: an unknown name, or ``multi_worker`` without ``TF_CONFIG``.
    """
    import tensorflow as tf

    kind = kind or "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy=multi_worker reads the cluster from TF_CONFIG "
                             '({"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": I}}); '
                             "it is not set.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {kind!r}; choose from {', '.join(STRATEGIES)}.")


def _cluster():
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return config.get("cluster", {}), config.get("task", {})


def workers(strategy):
    """How many worker processes take part (1 without a cluster)."""
    cluster, _ = _cluster()
    if getattr(strategy, "cluster_resolver", None) is None or not cluster:
        return 1
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def is_chief(strategy):
    """Whether this process writes the run's files: task ``chief``, or ``worker`` 0 when there is no chief."""
    cluster, task = _cluster()
    if getattr(strategy, "cluster_resolver", None) is None or not cluster:
        return True
    kind, index = task.get("type"), int(task.get("index", 0))
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def describe(strategy, kind, global_batch):
    """What the card records about how a run was distributed.

    Raises:
        ValueError: the global batch does not split evenly over the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(f"batch_size {global_batch} (the global batch) must split evenly over the {replicas} "
                         "replicas.")
    return {"strategy": kind or "default", "replicas": replicas, "workers": workers(strategy),
            "global_batch": global_batch, "per_replica_batch": global_batch // replicas}


def data_sharding():
    """`tf.data.Options` that split every global batch between the workers (the batches are built in memory:
    there are no files to shard)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def fit_multi_worker(strategy, model, train, val, *, epochs, initial_epoch, steps, validation_steps, callbacks,
                     verbose=2):
    """`keras.Model.fit` for `tf.distribute.MultiWorkerMirroredStrategy`, which Keras 3's own fit cannot run:
    it reduces every scalar log as a MEAN over axis 0 across workers (tensorflow#72388). Each step runs the
    model's own ``train_step`` on every replica (`tf.distribute.Strategy.run`), so a family's step is the
    same code under one device or many; the logs are the replicas' means; the callbacks see what fit's see.

    Returns:
        The last epoch's logs.
    """
    import keras
    import tensorflow as tf

    def mean(logs):
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    @tf.function
    def train_step(batch):
        return mean(strategy.run(model.train_step, args=(batch,)))

    @tf.function
    def test_step(batch):
        return mean(strategy.run(model.test_step, args=(batch,)))

    def run(step, dataset, count):
        for metric in model.metrics:
            metric.reset_state()
        logs, iterator = {}, iter(strategy.experimental_distribute_dataset(dataset))
        for _ in range(count):
            logs = step(next(iterator))
        return {k: float(v) for k, v in logs.items()}

    callbacks = keras.callbacks.CallbackList(callbacks, model=model, epochs=epochs, steps=steps, verbose=0)
    model.stop_training = False
    callbacks.on_train_begin()
    # Every worker must run the same number of validation steps on equal batches.
    val = val.unbatch().batch(int(next(iter(val))[0].shape[0]), drop_remainder=True)
    val_steps = validation_steps or sum(1 for _ in val)
    iterator, logs = iter(strategy.experimental_distribute_dataset(train)), {}
    for epoch in range(initial_epoch, epochs):
        callbacks.on_epoch_begin(epoch)
        for metric in model.metrics:
            metric.reset_state()
        for _ in range(steps):
            logs = train_step(next(iterator))
        logs = {k: float(v) for k, v in logs.items()}
        logs.update({f"val_{k}": v for k, v in run(test_step, val, val_steps).items()})
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()), flush=True)
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    return logs


def barrier(strategy):
    """Waits until every worker gets here (one all-reduce), so none exits while another still needs it."""
    import tensorflow as tf

    if workers(strategy) > 1:
        strategy.reduce("SUM", strategy.run(tf.function(lambda: tf.constant(1.0))), axis=None)
