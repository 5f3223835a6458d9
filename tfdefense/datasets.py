"""Image datasets as numpy arrays and `tf.data` pipelines: MNIST, Fashion-MNIST, and yours.

Images are float32 in [0, 1] shaped [N, H, W, C]; labels are int64 in
[0, num_classes). A dataset is named by a string:

* ``"mnist"``, ``"fashion_mnist"``: the official IDX files (below);
* ``"tfds:NAME"``: any tensorflow-datasets image classification dataset with
  supervised keys (``tfds:cifar10``), its ``train`` and ``test`` splits;
* ``"PATH.npz"``: arrays ``x`` and ``y`` (or ``x_train``, ``y_train``,
  ``x_test``, ``y_test``);
* ``"DIR"``: one folder of images per class (read by
  `keras.utils.image_dataset_from_directory`), or ``DIR/train`` and
  ``DIR/test`` each laid out so.

In Python a `tf.data.Dataset` of ``(image, label)`` pairs (batched or not)
or an ``(x, y)`` tuple works too (`register`). A source with no test split
of its own gives a seeded seventh of its images to ``test`` (MNIST's 10000
of 70000). Pixels are scaled to [0, 1] from uint8-range values; anything
else (no labels, mixed shapes, values outside [0, 255], one class only) is a
`DatasetError` that says what was found.

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
MNIST_SHAPE, MNIST_CLASSES = (28, 28, 1), 10

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049
_SPLIT_SEED = 0
_VALIDATION_FRACTION = 1 / 21  # train:validation = 20:1
_HOLDOUT, _DEV = 150, 2000
_TEST_FRACTION = 1 / 7  # a source without a test split: 10000 of MNIST's 70000
_REGISTERED = {}


class DatasetError(RuntimeError):
    """The data could not be found or is damaged; the message says what to do."""


def load(name, split, data_dir=None):
    """Loads one split as numpy arrays.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"``, ``"tfds:NAME"``, a ``.npz`` path, a folder, or a name
            given to `register`.
        split: one of ``SPLITS``.
        data_dir: optional folder holding ``<name>/*-idx?-ubyte.gz`` (MNIST and Fashion-MNIST).

    Returns:
        ``(x, y)``: float32 images [N, H, W, C] in [0, 1], int64 labels [N].

    Raises:
        ValueError: unknown name or split.
        DatasetError: files missing, truncated or corrupt.

    Example:
        >>> x, y = load("fashion_mnist", "holdout")   # doctest: +SKIP
        >>> len(x)                                     # doctest: +SKIP
        150
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    source = "train" if split in ("train", "validation") else "test"
    if name in NAMES:
        x, y = _official(name, source, _resolve_dir(data_dir))
    else:
        x, y = _user_source(name)[source]
    index = _split_index(split, len(x))
    return x[index], y[index]


def data_shape(name):
    """(image_shape, num_classes) of a dataset (MNIST and Fashion-MNIST without reading a file)."""
    if name in NAMES:
        return MNIST_SHAPE, MNIST_CLASSES
    pool = _user_source(name)
    return tuple(pool["train"][0].shape[1:]), int(max(pool["train"][1].max(), pool["test"][1].max()) + 1)


def register(name, data):
    """Makes in-memory data loadable by ``name``: a `tf.data.Dataset` of (image, label) pairs (batched
    or not), or an ``(x, y)`` tuple of arrays. It is checked and split like any other source.

    Example:
        >>> register("mine", (np.zeros((70, 8, 8, 3), np.uint8), np.arange(70) % 2))
        >>> load("mine", "test")[0].shape
        (10, 8, 8, 3)
    """
    if not isinstance(name, str) or name in NAMES or name.startswith("tfds:"):
        raise ValueError(f"choose another name than {name!r} for your data.")
    x, y = _from_tf_data(data) if hasattr(data, "element_spec") else data
    _REGISTERED[name] = _pool(*_checked(x, y, f"the data registered as {name!r}"), None)
    _user_source.cache_clear()


def describe(name):
    """One line for cards and reports: what the source is and its shape."""
    shape, classes = data_shape(name)
    return f"{name} ({'x'.join(map(str, shape))}, {classes} classes)"


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


def _split_index(split, n):
    if split == "test":
        return np.arange(n)
    perm = np.random.default_rng(_SPLIT_SEED).permutation(n)
    if split in ("train", "validation"):
        n_val = max(1, int(round(n * _VALIDATION_FRACTION)))
        return np.sort(perm[:n_val] if split == "validation" else perm[n_val:])
    n_holdout = min(_HOLDOUT, n // 5)  # a small test set keeps most of its images for evaluation
    holdout, rest = perm[:n_holdout], perm[n_holdout:]
    return np.sort({"holdout": holdout, "eval": rest, "dev": rest[:_DEV]}[split])


# -- your data ---------------------------------------------------------------------------------------
def _checked(x, y, where):
    """Images as float32 [N, H, W, C] in [0, 1] and labels as int64, or a DatasetError naming the problem."""
    if y is None:
        raise DatasetError(f"{where} has no labels; give one integer class per image.")
    try:
        x = np.asarray(x)
    except ValueError as e:
        raise DatasetError(f"{where} holds images of different shapes ({e}); resize them to one (H, W, C).") from e
    if x.dtype == object:
        shapes = sorted({np.shape(v) for v in x}, key=str)[:3]
        raise DatasetError(f"{where} holds images of different shapes, e.g. {shapes}; resize them to one (H, W, C).")
    y = np.asarray(y)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise DatasetError(f"{where}: images must be [N, H, W] or [N, H, W, C] with C in 1, 3, 4; got {x.shape}.")
    if y.ndim != 1 or len(y) != len(x):
        raise DatasetError(f"{where}: {len(x)} images but labels of shape {y.shape}; give one label per image.")
    if not np.issubdtype(y.dtype, np.integer) and not (np.issubdtype(y.dtype, np.floating)
                                                       and np.all(np.mod(y, 1) == 0)):
        raise DatasetError(f"{where}: labels must be integer classes, got dtype {y.dtype}.")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DatasetError(f"{where}: labels must be classes 0..K-1, found {y.min()}.")
    if len(np.unique(y)) < 2:
        raise DatasetError(f"{where} has one class only ({np.unique(y).tolist()}); a classifier needs two or more.")
    if not np.issubdtype(x.dtype, np.number) or x.dtype == bool:
        raise DatasetError(f"{where}: images must be numbers, got dtype {x.dtype}.")
    if not np.all(np.isfinite(x)):
        raise DatasetError(f"{where}: images contain NaN or Inf.")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise DatasetError(f"{where}: pixel values span [{low:g}, {high:g}]; expected [0, 255] or [0, 1].")
    scale = 255.0 if (np.issubdtype(x.dtype, np.integer) or high > 1) else 1.0
    return (x.astype(np.float32) / scale), y


def _pool(x, y, test):
    """{"train": (x, y), "test": (x, y)}; without a test split a seeded seventh of the images is test."""
    if test is None:
        perm = np.random.default_rng(_SPLIT_SEED).permutation(len(x))
        n_test = max(1, int(round(len(x) * _TEST_FRACTION)))
        test_index, train_index = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        test, (x, y) = (x[test_index], y[test_index]), (x[train_index], y[train_index])
    if test[0].shape[1:] != x.shape[1:]:
        raise DatasetError(f"train images are {x.shape[1:]} but test images {test[0].shape[1:]}.")
    for arr in (x, y, *test):
        arr.flags.writeable = False
    return {"train": (x, y), "test": test}


def _from_tf_data(ds):
    import tensorflow as tf

    spec = ds.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise DatasetError(f"a tf.data.Dataset of (image, label) pairs is needed; its elements are {spec}.")
    batched = spec[0].shape.rank == 4 or (spec[0].shape.rank == 3 and spec[1].shape.rank == 1)
    parts = list((ds if batched else ds.batch(1024)).prefetch(tf.data.AUTOTUNE).as_numpy_iterator())
    if not parts:
        raise DatasetError("the tf.data.Dataset is empty.")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _from_npz(path):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zlib.error) as e:
        raise DatasetError(f"{path} is not a readable .npz file ({e}).") from e
    if {"x_train", "y_train"} <= set(arrays):
        test = (_checked(arrays["x_test"], arrays.get("y_test"), f"{path} (x_test)")
                if "x_test" in arrays else None)
        return _pool(*_checked(arrays["x_train"], arrays.get("y_train"), f"{path} (x_train)"), test)
    if "x" not in arrays:
        raise DatasetError(f"{path} holds arrays {sorted(arrays)}; expected x and y (or x_train, y_train, "
                           "x_test, y_test).")
    return _pool(*_checked(arrays["x"], arrays.get("y"), path), None)


def _from_folder(path):
    import keras

    def read(folder):
        try:
            ds = keras.utils.image_dataset_from_directory(folder, labels="inferred", label_mode="int",
                                                          color_mode=_color_mode(folder), batch_size=256,
                                                          shuffle=False, image_size=_first_size(folder),
                                                          verbose=False)
        except ValueError as e:
            raise DatasetError(f"{folder}: {e}") from e
        return _checked(*_from_tf_data(ds), folder)

    split = os.path.isdir(os.path.join(path, "train")) and os.path.isdir(os.path.join(path, "test"))
    if split:
        return _pool(*read(os.path.join(path, "train")), read(os.path.join(path, "test")))
    return _pool(*read(path), None)


def _images_in(folder):
    for root, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
            if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".gif")):
                yield os.path.join(root, f)


def _first_size(folder):
    """The size every image must have: the first image's (a folder of mixed sizes is an error, not resized)."""
    from PIL import Image

    paths = list(_images_in(folder))
    if not paths:
        raise DatasetError(f"{folder} holds no images (.png, .jpg, .bmp, .gif) in class folders.")
    sizes = {}
    for p in paths:
        with Image.open(p) as im:
            sizes.setdefault(im.size[::-1], p)
    if len(sizes) > 1:
        (a, pa), (b, pb) = list(sizes.items())[:2]
        raise DatasetError(f"{folder} holds images of different sizes: {pa} is {a[0]}x{a[1]}, {pb} is "
                           f"{b[0]}x{b[1]}; resize them to one size.")
    return next(iter(sizes))


def _color_mode(folder):
    from PIL import Image

    with Image.open(next(_images_in(folder))) as im:
        return "grayscale" if im.mode in ("L", "1", "I;16") else "rgb"


def _from_tfds_name(name):
    """A tensorflow-datasets image classification dataset: its train and test splits (or a seventh
    of train as test). Read element by element: ``batch_size=-1`` aborts under tfds' mock_data here."""
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(name)
        keys = builder.info.supervised_keys
        splits = set(builder.info.splits) or {"train", "test"}
    except Exception as e:  # tfds raises many kinds of errors for unknown names and when offline
        raise DatasetError(f"tensorflow-datasets has no dataset {name!r} here ({type(e).__name__}: "
                           f"{str(e)[:200]}).") from e
    if not keys:
        raise DatasetError(f"tfds:{name} has no supervised keys (image, label), so it has no labels to train on.")

    def read(split):
        try:
            ds = tfds.load(name, split=split, as_supervised=True)
        except Exception as e:
            raise DatasetError(f"could not load tfds:{name} split {split!r} ({type(e).__name__}: {str(e)[:200]}); "
                               "offline, prepare it once with `tfds build` where the network is reachable.") from e
        return _checked(*_from_tf_data(ds.batch(1024)), f"tfds:{name} {split}")

    return _pool(*read("train"), read("test") if "test" in splits else None)


@functools.lru_cache(maxsize=8)
def _user_source(name):
    if not isinstance(name, str):
        raise ValueError(f"a dataset is named by a string; got {type(name).__name__} (use datasets.register).")
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name.startswith("tfds:"):
        return _from_tfds_name(name[len("tfds:"):])
    if name.endswith(".npz"):
        if not os.path.isfile(name):
            raise DatasetError(f"{name} does not exist.")
        return _from_npz(name)
    if os.path.isdir(name):
        return _from_folder(name)
    raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(NAMES)}, tfds:NAME, a .npz file or a "
                     "folder of class folders.")


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


def _from_tfds(name, source):  # MNIST and Fashion-MNIST without TFDEFENSE_DATA_DIR
    try:
        import tensorflow_datasets as tfds

        ds = tfds.load(name, split=source, batch_size=-1, as_supervised=True)
        x, y = tfds.as_numpy(ds)
    except Exception as e:  # tfds raises many kinds of errors when offline
        raise DatasetError(
            f"Could not load {name!r} through tensorflow-datasets ({type(e).__name__}: "
            f"{str(e)[:200]}). Offline, set {ENV_VAR} to a folder holding "
            f"{name}/train-images-idx3-ubyte.gz and the other official IDX files.") from e
    images = (np.asarray(x, np.float32) / 255.0).reshape(-1, *MNIST_SHAPE)
    return images, np.asarray(y, np.int64)
