"""MNIST and Fashion-MNIST as numpy arrays and `tf.data` pipelines.

Images are float32 in [0, 1] shaped [N, 28, 28, 1]; labels are int64.

Splits (the seed papers' protocol, fixed seeds so every user gets the same):

* ``train`` / ``validation``: the official 60000 training images split 20:1.
* ``test``: the official 10000 test images.
* ``holdout``: 150 test images kept for training black-box substitutes.
* ``eval``: the other 9850 test images; attack evaluations draw from here.
* ``dev``: 2000 fixed images of ``eval`` for quick experiments.

Sources, in order: ``data_dir``; the environment variable
``TFDEFENSE_DATA_DIR`` (a folder with ``<name>/<official IDX file>.gz``);
tensorflow-datasets (which downloads when online).

Example:
    >>> from tfdefense import datasets
    >>> x, y = datasets.load("mnist", "dev")          # doctest: +SKIP
    >>> x.shape, x.dtype, y[:3]                       # doctest: +SKIP
    ((2000, 28, 28, 1), dtype('float32'), array([...]))
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib

import numpy as np

NAMES = ("mnist", "fashion_mnist")
SPLITS = ("train", "validation", "test", "holdout", "eval", "dev")
ENV_VAR = "TFDEFENSE_DATA_DIR"
IMAGE_SHAPE = (28, 28, 1)

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049
_SPLIT_SEED = 0
_VALIDATION_FRACTION = 1 / 21  # train:validation = 20:1
_HOLDOUT, _DEV = 150, 2000


class DatasetError(RuntimeError):
    """The data could not be found or is damaged; the message says what to do."""


def load(name, split, data_dir=None):
    """Loads one split as numpy arrays.

    Args:
        name: ``"mnist"`` or ``"fashion_mnist"``.
        split: one of ``SPLITS``.
        data_dir: optional folder holding ``<name>/*-idx?-ubyte.gz``.

    Returns:
        ``(x, y)``: float32 images [N, 28, 28, 1] in [0, 1], int64 labels [N].

    Raises:
        ValueError: unknown name or split.
        DatasetError: files missing, truncated or corrupt.

    Example:
        >>> x, y = load("fashion_mnist", "holdout")   # doctest: +SKIP
        >>> len(x)                                     # doctest: +SKIP
        150
    """
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    source = "train" if split in ("train", "validation") else "test"
    x, y = _official(name, source, _resolve_dir(data_dir))
    index = _split_index(split, len(x))
    return x[index], y[index]


def as_dataset(name, split, batch_size, *, shuffle=None, repeat=False, seed=0,
               drop_remainder=False, data_dir=None):
    """Returns the split as a batched ``tf.data.Dataset`` of ``(x, y)``.

    Args:
        name: dataset name.
        split: split name.
        batch_size: positive int.
        shuffle: shuffle each epoch; defaults to True for ``train`` only.
        repeat: repeat forever.
        seed: shuffle seed.
        drop_remainder: drop a last partial batch.
        data_dir: optional data folder.

    Example:
        >>> ds = as_dataset("mnist", "train", batch_size=100)   # doctest: +SKIP
    """
    import tensorflow as tf

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    x, y = load(name, split, data_dir=data_dir)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle is None:
        shuffle = split == "train"
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def epoch_batches(name, split, batch_size, *, seed, first_epoch, epochs, steps_per_epoch=None, data_dir=None):
    """Training batches for epochs ``first_epoch .. epochs - 1`` in one dataset.

    Each epoch's order is a pure function of ``(seed, epoch)``, so a run
    resumed at epoch k sees exactly the batches the uninterrupted run saw
    from epoch k on (``as_dataset``'s reshuffling depends on how many epochs
    the iterator has already served). A last partial batch is dropped.

    Returns:
        ``(dataset of (x, y) batches, steps per epoch)``.
    """
    import tensorflow as tf

    x, y = load(name, split, data_dir=data_dir)
    per_epoch = len(x) // batch_size
    if steps_per_epoch:
        per_epoch = min(per_epoch, steps_per_epoch)
    if per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the {len(x)} images of {name} {split}.")
    x, y = tf.constant(x), tf.constant(y)

    def epoch(e):
        order = tf.argsort(tf.random.stateless_uniform([len(x)], tf.stack([tf.constant(seed, tf.int64), e])))
        return tf.data.Dataset.from_tensor_slices(tf.reshape(order[:per_epoch * batch_size], [per_epoch, batch_size]))

    ds = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch)
    ds = ds.map(lambda index: (tf.gather(x, index), tf.gather(y, index)))
    return ds.prefetch(tf.data.AUTOTUNE), per_epoch


def split_sizes(num_train=60000, num_test=10000):
    """Sizes of each split for official set sizes (documentation and tests)."""
    return {s: len(_split_index(s, num_train if s in ("train", "validation") else num_test))
            for s in SPLITS}


def _check_name(name):
    if name not in NAMES:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(NAMES)}.")


def _split_index(split, n):
    if split == "test":
        return np.arange(n)
    perm = np.random.default_rng(_SPLIT_SEED).permutation(n)
    if split in ("train", "validation"):
        n_val = int(round(n * _VALIDATION_FRACTION))
        return np.sort(perm[:n_val] if split == "validation" else perm[n_val:])
    holdout, rest = perm[:_HOLDOUT], perm[_HOLDOUT:]
    return np.sort({"holdout": holdout, "eval": rest, "dev": rest[:_DEV]}[split])


def _resolve_dir(data_dir):
    if data_dir is not None:
        if not os.path.isdir(data_dir):
            raise DatasetError(f"data_dir {data_dir!r} is not a folder.")
        return os.path.abspath(data_dir)
    env = os.environ.get(ENV_VAR)
    if env:
        if not os.path.isdir(env):
            raise DatasetError(f"{ENV_VAR}={env!r} is not a folder; point it at the folder "
                               "that holds mnist/ and fashion_mnist/.")
        return os.path.abspath(env)
    return None


@functools.lru_cache(maxsize=8)
def _official(name, source, root):
    if root is None:
        return _from_tfds(name, source)
    folder = os.path.join(root, name)
    image_file, label_file = (_find(folder, stem) for stem in _FILES[source])
    x = read_idx(image_file, _IMAGE_MAGIC)
    y = read_idx(label_file, _LABEL_MAGIC)
    if x.shape[0] != y.shape[0]:
        raise DatasetError(f"{image_file} has {x.shape[0]} images but {label_file} has "
                           f"{y.shape[0]} labels; re-download both files.")
    if x.shape[1:] != (28, 28):
        raise DatasetError(f"{image_file} holds images of shape {x.shape[1:]}, expected (28, 28).")
    images = (x.astype(np.float32) / 255.0)[..., None]
    images.flags.writeable = False
    labels = y.astype(np.int64)
    labels.flags.writeable = False
    return images, labels


def _find(folder, stem):
    for candidate in (stem + ".gz", stem):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    raise DatasetError(f"Missing {os.path.join(folder, stem + '.gz')}: put the official IDX "
                       f"files under {folder}/ or unset {ENV_VAR} to use tensorflow-datasets.")


def read_idx(path, magic):
    """Reads one IDX file (optionally gzipped), checking magic number and length.

    Args:
        path: file path.
        magic: expected magic number (2051 images, 2049 labels).

    Returns:
        uint8 array shaped as the header says.

    Raises:
        DatasetError: naming the file, if it is corrupt, truncated or of the wrong kind.
    """
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path} is not a readable (gzip) IDX file ({e}); "
                           "the download is probably truncated: download it again.") from e
    if len(data) < 8:
        raise DatasetError(f"{path} is too short to be an IDX file ({len(data)} bytes).")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        kind = "images" if magic == _IMAGE_MAGIC else "labels"
        raise DatasetError(f"{path} has magic number {found}, expected {magic} for IDX "
                           f"{kind}; is it the right file?")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DatasetError(f"{path} holds {len(data)} bytes but its header {dims} needs "
                           f"{expected}: the file is truncated or corrupt; download it again.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _from_tfds(name, source):
    try:
        import tensorflow_datasets as tfds

        ds = tfds.load(name, split=source, batch_size=-1, as_supervised=True)
        x, y = tfds.as_numpy(ds)
    except Exception as e:  # tfds raises many kinds of errors when offline
        raise DatasetError(
            f"Could not load {name!r} through tensorflow-datasets ({type(e).__name__}: "
            f"{str(e)[:200]}). Offline, set {ENV_VAR} to a folder holding "
            f"{name}/train-images-idx3-ubyte.gz and the other official IDX files.") from e
    images = (np.asarray(x, np.float32) / 255.0).reshape(-1, 28, 28, 1)
    return images, np.asarray(y, np.int64)
