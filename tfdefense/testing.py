"""Shared helpers for tfdefense's tests (tiny shapes, fixed seeds)."""

import gzip
import os

import numpy as np

from tfdefense import datasets
from tfdefense.zoo import registry


def write_idx(path, array, compress=True):
    """Writes a uint8 array as an IDX file (gzipped when ``compress``)."""
    array = np.asarray(array, np.uint8)
    magic = (2051 if array.ndim == 3 else 2049).to_bytes(4, "big")
    header = magic + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)
    return path


def blob_images(n=8, seed=0):
    """Structured images (a bar whose position depends on a class) and their classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.int64)
    for i, label in enumerate(labels):
        images[i, 2 * label:2 * label + 8, 4:24] += 180
    return (np.clip(images, 0, 255)[..., None] / 255.0).astype(np.float32), labels


def make_data_dir(root, names=datasets.NAMES, n_train=210, n_test=200, seed=0):
    """Writes tiny official-style IDX files for ``names`` under ``root``.

    Images are class-dependent blobs plus noise so tiny models can learn them.
    Returns ``root``.
    """
    rng = np.random.default_rng(seed)
    for name in names:
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for (img_stem, lbl_stem), n in zip(datasets._FILES.values(), (n_train, n_test)):
            images, labels = blob_images(n, seed=int(rng.integers(1 << 30)))
            write_idx(os.path.join(folder, img_stem + ".gz"), np.round(images[..., 0] * 255))
            write_idx(os.path.join(folder, lbl_stem + ".gz"), labels)
    return root


def tiny_images(n=2, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1), dtype=np.float32)


def run_train_step_test(model, x, steps=2):
    """Fits ``model`` on ``x`` (images, or a tuple (images, labels)) for a few steps
    eagerly and compiled; returns both histories.

    Checks every reported loss is finite in both execution regimes.
    """
    histories = []
    for eager in (True, False):
        set_run_eagerly(model, eager)
        inputs, targets = x if isinstance(x, tuple) else (x, None)  # (images, labels) for supervised steps
        history = model.fit(inputs, targets, epochs=1, batch_size=max(1, len(inputs) // steps), verbose=0)
        for key, values in history.history.items():
            assert np.all(np.isfinite(values)), f"{key} not finite (run_eagerly={eager}): {values}"
        histories.append(history.history)
    set_run_eagerly(model, False)
    return histories


def set_run_eagerly(model, eager):
    """Switches execution mode for the next `fit`. Keras keeps the train
    function it built first, so setting ``run_eagerly`` alone would run the
    "compiled" pass eagerly again; dropping the cached function forces a rebuild."""
    model.run_eagerly = eager
    model.train_function = None


def run_serialization_test(model, tmp_path, x):
    """get_config round trip and `.keras` save/load give the same outputs."""
    import keras

    clone = model.__class__.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(model(x, training=False)),
                               np.asarray(restored(x, training=False)), atol=1e-5)
    return restored


def register_tiny_entry(family):
    """Registers (once) and returns ``tiny_<family>``: the family's first entry
    made tiny by the family's own ``tiny`` settings, stored under its own path."""
    name = f"tiny_{family}"
    if name not in registry.list_models():
        tiny = registry.get_family(family).tiny
        base = next(registry.get_entry(n) for n in registry.list_models() if registry.get_entry(n)["family"] == family)
        base.pop("name")
        # A tiny network cannot start from a full-size entry's weights.
        train = {k: v for k, v in base.get("train", {}).items() if k != "init_from"}
        base.update(path=name, config={**base["config"], **tiny.get("config", {})}, train=train,
                    inference={**base.get("inference", {}), **tiny.get("inference", {})})
        registry.register(name, base)
    return name


def colour_images(n=60, shape=(32, 32, 3), classes=3, seed=0):
    """uint8 images of ``shape`` (a bright band whose row depends on the class, on noise) and their classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 60, (n, *shape))
    band = max(1, shape[0] // classes)
    for i, label in enumerate(labels):
        images[i, label * band:(label + 1) * band, :, label % shape[2]] += 180
    return np.clip(images, 0, 255).astype(np.uint8), labels


def tiny_classifier(shape, classes, softmax=True):
    """A user's small keras classifier (ending in a softmax, as many do)."""
    import keras

    return keras.Sequential([keras.Input(shape), keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                             keras.layers.Flatten(),
                             keras.layers.Dense(classes, activation="softmax" if softmax else None)])


def user_data(folder, shape=(32, 32, 3), classes=3, n=70):
    """Writes ``data.npz`` and a saved ``classifier.keras`` for ``shape`` under ``folder``; returns both paths."""
    x, y = colour_images(n, shape, classes)
    data = os.path.join(folder, "data.npz")
    np.savez(data, x=x, y=y)
    path = os.path.join(folder, "classifier.keras")
    tiny_classifier(shape, classes).save(path)
    return data, path


def loopback_ports(n):
    """``n`` free TCP ports on 127.0.0.1 (for worker processes that a test or benchmark starts)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def noisy_purifier(amplitude=0.5, eot_samples=1):
    """A random, differentiable purifier: uniform noise in [-amplitude, amplitude] drawn from the request's seed."""
    import tensorflow as tf

    from tfdefense.defense.contract import PurifierLayer

    samples = eot_samples

    class Noisy(PurifierLayer):
        differentiable = True
        eot_samples = samples

        @property
        def random(self):
            return True

        def call(self, x, seed=0):
            noise = tf.random.stateless_uniform(tf.shape(x), tf.stack([tf.cast(seed, tf.int32), 0]),
                                                -amplitude, amplitude)
            return {"images": tf.clip_by_value(tf.cast(x, tf.float32) + noise, 0.0, 1.0)}

    return Noisy()
