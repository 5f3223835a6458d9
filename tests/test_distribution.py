"""`pip install tfdefense` as a new user gets it: the wheel carries cards and no weights; installed
outside the checkout, entries load by name from a mirror served on 127.0.0.1, are verified and
cached, and a corrupt file, a stopped server and two concurrent loads behave as documented."""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile

import numpy as np
import pytest

import tfdefense
from tfdefense.zoo import cards, store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHT_SUFFIXES = (".h5", ".keras", ".npz", ".pb", ".ckpt")
NAMES = ("classifier_c_mnist", "apegan_mnist")  # a bare classifier, and a defense that loads classifier A too

# Run in the installed environment: load each name, print the labels of fixed images.
SCRIPT = """
import json, sys
import numpy as np
import tfdefense
x = np.random.default_rng(0).uniform(0, 1, (8, 28, 28, 1)).astype("float32")
out = {"file": tfdefense.__file__}
for name in sys.argv[1:]:
    try:
        out[name] = np.asarray(tfdefense.load(name).defend(x)["label"]).tolist()
    except tfdefense.WeightsError as e:
        out[name] = "WeightsError: " + str(e)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    ROOT], check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    shutil.rmtree(os.path.join(ROOT, "build"), ignore_errors=True)
    return glob.glob(str(out / "*.whl"))[0], glob.glob(str(out / "*.tar.gz"))[0]


def test_wheel_holds_cards_and_no_weights(built):
    wheel, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith(WEIGHT_SUFFIXES)]
    assert os.path.getsize(wheel) < 2 * 2 ** 20, os.path.getsize(wheel)
    packaged = {os.path.basename(n)[:-5] for n in names if n.startswith("tfdefense/model_cards/")}
    assert packaged == set(store.published())


def test_sdist_holds_what_its_tests_need(built):
    _, sdist = built
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    for needed in ("conftest.py", "constraints.txt", "examples/quickstart.py", "tests/test_distribution.py",
                   "tfdefense/zoo/store_test.py", "tfdefense/model_cards/aegan_mnist.json"):
        assert needed in names, needed
    assert not [n for n in names if n.endswith(WEIGHT_SUFFIXES) or n.startswith("saved_models/")]


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory):
    """A fresh virtual environment outside the checkout with the wheel installed; the dependencies
    come from this environment's site-packages through a .pth line (no 2 GB reinstall)."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "env")], check=True, timeout=120)
    python = str(root / "env" / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "deps.pth"), "w") as f:  # a path line: this env's .pth hooks (the editable
        f.write(sysconfig.get_paths()["purelib"] + "\n")  # checkout) are not run, so it cannot shadow the wheel
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site,
                    built[0]], check=True, capture_output=True, timeout=300)
    return python, site, root


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mirror:
    """``python -m http.server`` on 127.0.0.1 over a release folder; its log counts the requests."""

    def __init__(self, folder, log):
        self.folder, self.log, self.port = folder, log, _free_port()
        self.process = subprocess.Popen([sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                                         "--directory", folder], stdout=subprocess.DEVNULL,
                                        stderr=open(log, "w"))
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("the mirror did not start")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def requests(self):
        return [line for line in open(self.log) if '"GET ' in line]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def _load(venv, env, *names, wait=True):
    python, _, root = venv
    args = [python, "-c", SCRIPT, *names]
    if not wait:
        return subprocess.Popen(args, cwd=str(root), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = subprocess.run(args, cwd=str(root), env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_installed_wheel_loads_by_name_from_a_mirror(venv, tmp_path):
    mirror_dir = tmp_path / "mirror"
    store.release(str(mirror_dir), [*NAMES, "classifier_a_mnist", "classifier_c_fmnist", "classifier_b_mnist"])
    fname = next(iter(store.packaged_card("classifier_c_fmnist")["files"]))
    bad = mirror_dir / "classifier_c_fmnist" / fname  # one flipped byte on the server
    data = bytearray(bad.read_bytes())
    data[1000] ^= 0x01
    bad.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    mirror = Mirror(str(mirror_dir), str(tmp_path / "server.log"))
    env = {k: v for k, v in os.environ.items() if k not in (cards.MODELS_ENV, "PYTHONPATH")}
    env.update({store.URL_ENV: mirror.url, store.HOME_ENV: str(cache), "TFDEFENSE_PROGRESS": "0",
                "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        # Two processes fetch the same entries at once: both succeed, one intact copy is cached.
        first = [_load(venv, env, *NAMES, wait=False) for _ in range(2)]
        results = []
        for p in first:
            stdout, stderr = p.communicate(timeout=600)
            assert p.returncode == 0, stderr[-3000:]
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        assert results[0]["file"].startswith(venv[1])  # the wheel's package, not the checkout
        x = np.random.default_rng(0).uniform(0, 1, (8, 28, 28, 1)).astype("float32")
        for name in NAMES:
            expected = np.asarray(tfdefense.load(name).defend(x)["label"]).tolist()  # the checkout's weights
            assert results[0][name] == results[1][name] == expected, name
        for name in (*NAMES, "classifier_a_mnist"):
            card = store.packaged_card(name)
            for f, digest in card["files"].items():
                assert cards.sha256(str(cache / name / f)) == digest
            assert not glob.glob(str(cache / name / "*.part"))
        # A second load is served from the cache: the server sees no request.
        before = len(mirror.requests())
        again = _load(venv, env, *NAMES)
        assert again[NAMES[0]] == results[0][NAMES[0]] and len(mirror.requests()) == before
        # A flipped byte is refused, named with both digests, and nothing enters the cache.
        refused = _load(venv, env, "classifier_c_fmnist")["classifier_c_fmnist"]
        expected_digest = store.packaged_card("classifier_c_fmnist")["files"][fname]
        assert refused.startswith("WeightsError") and fname in refused and expected_digest in refused
        assert cards.sha256(str(bad)) in refused
        assert not os.path.exists(cache / "classifier_c_fmnist" / fname)
    finally:
        mirror.stop()
    # The server is gone: the error names the URL, the entry and the offline ways.
    gone = _load(venv, env, "classifier_b_mnist")["classifier_b_mnist"]
    assert gone.startswith("WeightsError") and mirror.url in gone and cards.MODELS_ENV in gone, gone
