import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TFDEFENSE_PROGRESS"] = "0"


@pytest.fixture
def tiny_data_dir(tmp_path_factory, monkeypatch):
    """TFDEFENSE_DATA_DIR pointing at tiny IDX files written by the test."""
    from tfdefense import testing

    root = testing.make_data_dir(str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("TFDEFENSE_DATA_DIR", root)
    return root


@pytest.fixture
def real_data_dir():
    """The real IDX files (TFDEFENSE_DATA_DIR), or skip when it is not set."""
    root = os.environ.get("TFDEFENSE_DATA_DIR")
    if not root or not os.path.isdir(os.path.join(root, "mnist")):
        pytest.skip("TFDEFENSE_DATA_DIR with the real datasets is not set")
    return root
