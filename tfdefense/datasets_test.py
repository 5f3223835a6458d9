import gzip
import os

import numpy as np
import pytest

from tfdefense import datasets, testing


def test_split_sizes_follow_the_protocol():
    sizes = datasets.split_sizes()
    assert sizes == {"train": 57143, "validation": 2857, "test": 10000, "holdout": 150,
                     "eval": 9850, "dev": 2000}


def test_splits_are_disjoint_and_fixed():
    tr, va = datasets._split_index("train", 600), datasets._split_index("validation", 600)
    assert not set(tr) & set(va) and len(tr) + len(va) == 600
    hold, ev, dev = (set(datasets._split_index(s, 10000)) for s in ("holdout", "eval", "dev"))
    assert not hold & ev and dev <= ev and len(hold | ev) == 10000
    np.testing.assert_array_equal(datasets._split_index("dev", 10000), datasets._split_index("dev", 10000))


def test_load_tiny_idx(tiny_data_dir):
    x, y = datasets.load("mnist", "train")
    assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype == np.int64 and len(x) == len(y) == 200
    xt, _ = datasets.load("fashion_mnist", "test", data_dir=tiny_data_dir)
    assert len(xt) == 200


def test_as_dataset_batches(tiny_data_dir):
    ds = datasets.as_dataset("mnist", "validation", batch_size=4)
    x, y = next(iter(ds))
    assert tuple(x.shape) == (4, 28, 28, 1) and tuple(y.shape) == (4,)
    with pytest.raises(ValueError, match="batch_size"):
        datasets.as_dataset("mnist", "train", batch_size=0)


@pytest.mark.parametrize("name,split,match", [("cifar10", "train", "Unknown dataset"),
                                              ("mnist", "training", "Unknown split")])
def test_bad_names(name, split, match):
    with pytest.raises(ValueError, match=match):
        datasets.load(name, split)


def _corrupt(root, how):
    path = os.path.join(root, "mnist", "t10k-images-idx3-ubyte.gz")
    data = gzip.open(path).read()
    if how == "truncated_gzip":
        raw = open(path, "rb").read()
        open(path, "wb").write(raw[: len(raw) // 2])
    elif how == "short_payload":
        with gzip.open(path, "wb") as f:
            f.write(data[:-100])
    elif how == "wrong_magic":
        with gzip.open(path, "wb") as f:
            f.write((2049).to_bytes(4, "big") + data[4:])
    elif how == "missing":
        os.remove(path)
    return path


@pytest.mark.parametrize("how,match", [("truncated_gzip", "truncated"), ("short_payload", "truncated"),
                                       ("wrong_magic", "magic number 2049"), ("missing", "Missing")])
def test_damaged_files_give_clear_errors(tmp_path, how, match):
    root = testing.make_data_dir(str(tmp_path), names=("mnist",), n_train=30, n_test=20)
    path = _corrupt(root, how)
    with pytest.raises(datasets.DatasetError, match=match) as info:
        datasets.load("mnist", "test", data_dir=root)
    assert os.path.basename(path).split(".")[0] in str(info.value)


def test_bad_env_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(datasets.DatasetError, match="TFDEFENSE_DATA_DIR"):
        datasets.load("mnist", "test")


@pytest.mark.parametrize("name", datasets.NAMES)
def test_real_files(real_data_dir, name):
    x, y = datasets.load(name, "test")
    assert x.shape == (10000, 28, 28, 1)
    if name == "mnist":  # official test label counts
        assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert len(datasets.load(name, "train")[0]) == 57143


@pytest.mark.slow  # offline, tfds retries the download for about 3.5 minutes before it gives up
def test_tfds_prepare_step_runs_up_to_the_network(tmp_path, monkeypatch):
    """tfds' download-and-prepare imports everything it needs (it once failed on a missing
    importlib_resources before any network access); offline it stops at the download."""
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    try:
        x, _ = datasets.load("mnist", "test")
    except datasets.DatasetError as e:
        assert "No module named" not in str(e) and "ModuleNotFoundError" not in str(e), str(e)
        assert datasets.ENV_VAR in str(e)  # says what to set offline
    else:
        assert x.shape == (10000, 28, 28, 1)  # online: tfds downloaded the real files
