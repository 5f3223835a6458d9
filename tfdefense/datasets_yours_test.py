"""Your data: .npz arrays, class folders, tf.data, tensorflow-datasets (under tfds' mock_data), and the
clear errors bad data gets."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tfdefense import datasets, testing


def _npz(tmp_path, name="d.npz", **arrays):
    path = str(tmp_path / name)
    np.savez(path, **arrays)
    return path


def test_npz_arrays_are_scaled_and_split_like_mnist(tmp_path):
    x, y = testing.colour_images(700, (32, 32, 3), classes=4)
    path = _npz(tmp_path, x=x, y=y)
    assert datasets.data_shape(path) == ((32, 32, 3), 4)
    sizes = {s: len(datasets.load(path, s)[0]) for s in datasets.SPLITS}
    assert sizes == {"train": 571, "validation": 29, "test": 100, "holdout": 20, "eval": 80, "dev": 80}
    xt, yt = datasets.load(path, "train")
    assert xt.dtype == np.float32 and xt.max() <= 1 and yt.dtype == np.int64
    # train/test given explicitly are kept as they are
    both = _npz(tmp_path, "both.npz", x_train=x[:600], y_train=y[:600], x_test=x[600:], y_test=y[600:])
    np.testing.assert_array_equal(datasets.load(both, "test")[1], y[600:])


@pytest.mark.parametrize("arrays,match", [
    ({"x": np.zeros((50, 8, 8), np.uint8)}, "no labels"),
    ({"x": np.zeros((50, 8, 8), np.uint8), "y": np.zeros(50, int)}, "one class only"),
    ({"x": np.full((50, 8, 8), 300.0), "y": np.arange(50) % 2}, r"span \[300, 300\]; expected \[0, 255\] or \[0, 1\]"),
    ({"x": np.full((50, 8, 8), -0.5), "y": np.arange(50) % 2}, "expected"),
    ({"x": np.zeros((50, 8, 8)), "y": np.arange(49) % 2}, "50 images but labels of shape"),
    ({"x": np.zeros((50, 8, 8)), "y": (np.arange(50) % 2) + 0.5}, "integer classes"),
    ({"images": np.zeros((50, 8, 8))}, "expected x and y"),
])
def test_bad_npz_data_says_what_was_found(tmp_path, arrays, match):
    with pytest.raises(datasets.DatasetError, match=match):
        datasets.load(_npz(tmp_path, **arrays), "train")


def _write_folder(root, sizes):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, size in enumerate(sizes):
        os.makedirs(root / f"class_{c}", exist_ok=True)
        for i in range(7):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / f"class_{c}" / f"{i}.png")


def test_class_folders_load_and_mixed_sizes_are_refused(tmp_path):
    _write_folder(tmp_path / "ok", [(16, 16)] * 3)
    assert datasets.data_shape(str(tmp_path / "ok")) == ((16, 16, 3), 3)
    assert len(datasets.load(str(tmp_path / "ok"), "test")[0]) == 3
    _write_folder(tmp_path / "mixed", [(16, 16), (12, 10)])
    with pytest.raises(datasets.DatasetError, match="different sizes.*16x16.*12x10"):
        datasets.load(str(tmp_path / "mixed"), "train")
    with pytest.raises(ValueError, match="Unknown dataset"):
        datasets.load(str(tmp_path / "missing"), "train")


def test_tf_data_and_mixed_shapes(tmp_path):
    import tensorflow as tf

    x, y = testing.colour_images(70, (8, 8, 3), classes=2)
    datasets.register("yours_tfdata", tf.data.Dataset.from_tensor_slices((x, y)).batch(16))
    assert datasets.data_shape("yours_tfdata") == ((8, 8, 3), 2)
    with pytest.raises(datasets.DatasetError, match="different shapes"):
        datasets.register("ragged", ([np.zeros((8, 8, 3)), np.zeros((9, 8, 3))], [0, 1]))


TFDS_RUN = """
import sys, numpy as np, tensorflow_datasets as tfds
from tfdefense import datasets
from tfdefense.zoo import registry, training
with tfds.testing.mock_data(num_examples=40):
    shape, classes = datasets.data_shape("tfds:cifar10")
    x, y = datasets.load("tfds:cifar10", "train")
    entry = registry.user_entry("magnet", "tfds:cifar10", config={"structure": [4]})
    card = training.train_and_evaluate(entry, sys.argv[1], verbose=0, overrides={"epochs": 1, "steps_per_epoch": 1,
                                       "batch_size": 8, "dtype_policy": "float32"})
print("RESULT", shape, classes, x.shape, float(x.max()) <= 1.0, card["image_shape"], card["dataset"])
"""


def test_tfds_cifar10_loads_and_trains_one_step_under_mock_data(tmp_path):
    """tensorflow-datasets' real loading code on generated CIFAR-10 examples, in a subprocess: tfds' mock keeps
    global state, and batch_size=-1 under it aborts the process here (the loader reads element by element)."""
    proc = subprocess.run([sys.executable, "-c", TFDS_RUN, str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][0]
    assert line == "RESULT (32, 32, 3) 10 (38, 32, 32, 3) True [32, 32, 3] tfds:cifar10", line
