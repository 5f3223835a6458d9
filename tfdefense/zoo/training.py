"""One training loop for every family: `keras.Model.fit`, a checkpoint every
epoch, exact resume after a kill, and a model card at the end.

Exact resume means: a run killed at any point and resumed with ``--resume``
ends with bit-for-bit the weights and optimizer state of the same run
without the kill, on the same machine and thread count with the same
settings (`training_test.test_resume_is_bit_for_bit`). It holds because the
checkpoint after epoch k stores the weights, the optimizer state and every
seed generator's state, and each epoch's batch order is a function of
(seed, epoch) only (`datasets.epoch_batches`). A kill loses at most the epoch
in progress; changing ``batch_size`` or ``steps_per_epoch`` on resume changes
the data order from then on (a note says so).

Example:
    >>> from tfdefense import training
    >>> training.train_and_evaluate("classifier_c_mnist", "/tmp/run_c",
    ...                             overrides={"epochs": 1})   # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

from tfdefense import datasets
from tfdefense.zoo import cards, distribute, registry, store
from tfdefense.zoo.cards import read_json, write_json

CHECKPOINT = "checkpoint.weights.h5"
STATE = "state.json"
REPORTS = "reports"  # evaluation reports under a published folder, kept when new weights are published
TRAIN_DEFAULTS = {"epochs": 10, "batch_size": 100, "learning_rate": 1e-3, "seed": 0,
                  "steps_per_epoch": None, "validation_steps": None, "dtype_policy": "float32",
                  "init_from": None, "learning_rate_drops": ()}


def train_config(entry, overrides=None):
    """The entry's training settings with defaults and ``overrides`` applied."""
    config = dict(TRAIN_DEFAULTS, **entry.get("train", {}))
    for key, value in (overrides or {}).items():
        if key not in config:
            raise ValueError(f"Unknown training setting {key!r}; known: {', '.join(sorted(config))}.")
        config[key] = value
    return config


def seed_generators(model):
    """Every `keras.random.SeedGenerator` of ``model`` and its layers, in a fixed order."""
    found, seen = [], set()
    for layer in model._flatten_layers(include_self=True):
        for generator in getattr(layer, "_seed_generators", []):
            if id(generator) not in seen:
                seen.add(id(generator))
                found.append(generator)
    return found


def learning_rate_at(config, epoch):
    """The learning rate of 0-based ``epoch``: ``learning_rate``, divided by 10 at each epoch listed in
    ``learning_rate_drops`` (a step schedule; a resumed run recomputes it from the epoch)."""
    return config["learning_rate"] * 0.1 ** sum(epoch >= drop for drop in config["learning_rate_drops"])


def _schedule_callbacks(model, config):
    if not config["learning_rate_drops"]:
        return []
    if not isinstance(getattr(model, "optimizer", None), keras.optimizers.Optimizer):
        raise ValueError("learning_rate_drops needs a model with one optimizer; "
                         f"{type(model).__name__} has {type(getattr(model, 'optimizer', None)).__name__}.")
    return [keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate_at(config, epoch))]


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes weights (optimizer state included) and progress after every epoch.

    Files are written to a temporary name and renamed, so a kill mid-write
    leaves the previous checkpoint intact.
    """

    def __init__(self, workdir, state, write=True):
        super().__init__()
        self.workdir = workdir
        self.state = state
        self.write = write  # under several workers only the chief writes; the others restore from it
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.state["epoch"] = epoch + 1
        self.state["wall_time_s"] = self.state.get("wall_time_s", 0.0) + time.time() - self._start
        self.state.setdefault("history", []).append(
            {k: float(v) for k, v in (logs or {}).items()})
        # Keras' weight files leave out the seed generators (dropout masks, noise):
        # their states go into the state file so a resumed run draws the same numbers.
        self.state["seed_states"] = [g.state.numpy().tolist() for g in seed_generators(self.model)]
        if not self.write:
            return
        tmp = os.path.join(self.workdir, "tmp." + CHECKPOINT)
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, os.path.join(self.workdir, CHECKPOINT))
        write_json(os.path.join(self.workdir, STATE), self.state)


def train_and_evaluate(name_or_entry, workdir, *, resume=False, warm_start=False, overrides=None,
                       publish_dir=None, verbose="auto", strategy=None):
    """Trains a registered entry, checkpointing every epoch, and writes its card.

    Args:
        name_or_entry: a registered name, or an entry dict (tests use tiny ones).
        workdir: folder for checkpoints, logs and the final ``export/``.
        resume: continue from the checkpoint in ``workdir``. Without it an
            existing checkpoint is never overwritten.
        warm_start: with no checkpoint in ``workdir``, start from the
            published weights (``saved_models/<path>``) at the epoch their card
            says they completed, through the family's ``warm_start`` hook; what
            the weights do not hold (optimizer state, a discriminator) starts
            fresh, and the card says so. Later runs ``resume`` as usual.
        overrides: training settings to change (``epochs``, ``batch_size``, ...).
        publish_dir: if given, the finished weights and card are copied to
            ``publish_dir/<entry path>/`` (e.g. the repository's ``saved_models``).
        verbose: Keras ``fit`` verbosity; "auto" shows a bar on a terminal and
            one line per epoch in a log file.
        strategy: "default", "mirrored" or "multi_worker" (`tfdefense.zoo.distribute`);
            ``batch_size`` is then the global batch.

    Returns:
        The model card (dict).
    """
    kind = strategy if isinstance(strategy, str) or strategy is None else "custom"
    strategy = distribute.make(strategy) if kind != "custom" else strategy  # first: before any other TF op
    entry = registry.get_entry(name_or_entry) if isinstance(name_or_entry, str) else dict(name_or_entry)
    config = train_config(entry, overrides)
    family = registry.get_family(entry["family"])
    os.makedirs(workdir, exist_ok=True)
    state_path = os.path.join(workdir, STATE)
    if os.path.exists(state_path) and not resume:
        raise FileExistsError(f"{workdir} already holds a checkpoint; pass --resume to continue it, "
                              "or choose another --workdir.")
    state = read_json(state_path) if resume and os.path.exists(state_path) else {}
    if warm_start and not state:
        if family.warm_start is None:
            raise ValueError(f"the {entry['family']!r} family cannot warm-start from published weights.")
        source, card = store.resolve(entry["name"])  # fails closed on a missing or altered file
        state = {"epoch": card["training"]["epochs_completed"], "wall_time_s": card["training"]["wall_time_s"],
                 "warm_start": {"from": source, "epochs_completed": card["training"]["epochs_completed"],
                                "files": card["files"], "fresh": "optimizer state and anything not published"}}
    if config["init_from"] and not state:
        state = {"init_from": _init_source(entry, family, config["init_from"])}
    if state and state.get("config", config) != config:
        print(f"note: resuming with changed settings {config} (was {state['config']})", file=sys.stderr)
    state["config"] = config
    state["distribution"] = distribute.describe(strategy, kind, config["batch_size"])

    # The same seed as the uninterrupted run: every layer and seed generator is
    # built identically, then the checkpoint restores their state.
    keras.utils.set_random_seed(config["seed"])
    previous_policy = keras.config.dtype_policy()
    # mixed_bfloat16 keeps float32 master weights, so saved weights stay float32.
    keras.config.set_dtype_policy(config["dtype_policy"])
    try:
        return _train(entry, config, family, workdir, state, publish_dir, verbose, strategy)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _init_source(entry, family, source_name):
    """Where an ``init_from`` run takes its first weights: another published entry of the same
    family and network (e.g. PGD training that starts from the FGSM-trained classifier)."""
    source = registry.get_entry(source_name)
    if family.warm_start is None:
        raise ValueError(f"the {entry['family']!r} family cannot start from another entry's weights.")
    if source["family"] != entry["family"] or source["metadata"]["dataset"] != entry["metadata"]["dataset"]:
        raise ValueError(f"init_from={source_name!r} is a {source['family']} entry on "
                         f"{source['metadata']['dataset']}; {entry['name']} needs the same family and dataset.")
    folder, card = store.resolve(source_name)  # fails closed on a missing or altered file
    if card["architecture"].get("arch") != entry["config"].get("arch"):
        raise ValueError(f"init_from={source_name!r} has network {card['architecture'].get('arch')!r}, "
                         f"{entry['name']} needs {entry['config'].get('arch')!r}.")
    return {"from": folder, "name": source_name, "epochs_completed": card["training"]["epochs_completed"],
            "files": card["files"]}


def _train(entry, config, family, workdir, state, publish_dir, verbose, strategy):
    chief = distribute.is_chief(strategy)
    with strategy.scope():  # every variable (weights, optimizer slots, seed states) is the strategy's
        model = family.build_for_training(entry, config)
        if not model.built:  # subclassed models: create every variable before a checkpoint loads
            model(np.zeros((1, *registry.data_shape(entry)[0]), "float32"), training=False)
        if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    initial_epoch = 0
    fresh = not os.path.exists(os.path.join(workdir, CHECKPOINT))
    if state.get("init_from") and fresh:
        family.warm_start(model, entry, state["init_from"]["from"])
        print(f"{entry['name']} starts from the weights of {config['init_from']} (epoch 0/{config['epochs']}, "
              "fresh optimizer state).", file=sys.stderr)
    elif state.get("warm_start") and fresh:
        family.warm_start(model, entry, state["warm_start"]["from"])
        initial_epoch = state["epoch"]
        print(f"Warm start of {entry['name']} from its published weights at epoch {initial_epoch}/"
              f"{config['epochs']} (fresh optimizer state).", file=sys.stderr)
    elif state.get("epoch"):
        model.load_weights(os.path.join(workdir, CHECKPOINT))
        for generator, value in zip(seed_generators(model), state.get("seed_states", [])):
            generator.state.assign(np.asarray(value, generator.state.dtype))
        initial_epoch = state["epoch"]
        print(f"Resuming {entry['name']} from epoch {initial_epoch}/{config['epochs']}.", file=sys.stderr)

    dataset = entry["metadata"]["dataset"]
    train, steps = datasets.epoch_batches(dataset, "train", config["batch_size"], seed=config["seed"],
                                          first_epoch=initial_epoch, epochs=config["epochs"],
                                          steps_per_epoch=config["steps_per_epoch"])
    val = datasets.as_dataset(dataset, "validation", config["batch_size"])
    if state["distribution"]["workers"] > 1:  # each worker takes its replicas' share of every global batch
        train, val = (d.with_options(distribute.data_sharding()) for d in (train, val))
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    if initial_epoch < config["epochs"] and model.trainable_weights:  # a composition of trained entries has none
        kwargs = dict(epochs=config["epochs"], initial_epoch=initial_epoch, validation_steps=config["validation_steps"],
                      callbacks=[*_schedule_callbacks(model, config), EpochCheckpoint(workdir, state, chief)])
        if state["distribution"]["workers"] > 1:
            distribute.fit_multi_worker(strategy, model, train, val, steps=steps, verbose=verbose, **kwargs)
        else:
            model.fit(train, validation_data=val, steps_per_epoch=steps, verbose=verbose, **kwargs)

    # Every worker saves and measures (either may run collective ops); only the chief's copy is kept.
    export = os.path.join(workdir, "export") if chief else tempfile.mkdtemp(prefix="tfdefense_worker_export_")
    try:
        card = _export(entry, config, family, model, state, export, publish_dir if chief else None)
    finally:
        if not chief:
            shutil.rmtree(export, ignore_errors=True)
    distribute.barrier(strategy)
    return card


def _export(entry, config, family, model, state, export, publish_dir):
    shutil.rmtree(export, ignore_errors=True)
    os.makedirs(export)
    files = family.save(model, entry, export)
    if entry.get("_classifier_file"):  # a user's classifier travels with the defense that protects it
        shutil.copyfile(entry["_classifier_file"], os.path.join(export, registry.CLASSIFIER_FILE))
        files.append(registry.CLASSIFIER_FILE)
    card = cards.make_card(entry, config, state, family.measure(model, entry), export, files,
                           data_shape=registry.data_shape(entry))
    cards.write_card(export, card)
    if publish_dir:
        publish(export, os.path.join(publish_dir, entry["path"]))
    return card


def publish(src, dst):
    """Copies a finished export to ``dst``, replacing its weights and card.

    Evaluation reports already under ``dst/reports`` are kept: they are the
    user's measurements, and each records the weights' sha256 it was measured
    on (``settings.weights`` in report.json), so one of the previous weights is
    told apart from the card's files. The old folder is renamed aside before
    the new one is renamed in, so a kill at any point leaves a complete copy
    under ``dst`` or ``dst.old``.
    """
    dst = dst.rstrip("/")
    tmp, old = dst + ".tmp", dst + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    reports = os.path.join(dst, REPORTS)
    if os.path.isdir(reports) and not os.path.exists(os.path.join(tmp, REPORTS)):
        shutil.copytree(reports, os.path.join(tmp, REPORTS))
        print(f"Kept the reports in {reports}: they were measured on the previous weights.")
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(dst):
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)
    store.sync_packaged(dst)  # a checkout's published card is also the package's
