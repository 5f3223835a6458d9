"""Training under tf.distribute, with real worker processes on 127.0.0.1 (each bounded by a timeout)."""

import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from tfdefense import testing
from tfdefense.zoo import distribute

TRAIN = ["--steps_per_epoch=3", "--validation_steps=2", "--batch_size=16"]
TIMEOUT = 300


def _cli(args, env=None):
    return subprocess.Popen([sys.executable, "-c", "from tfdefense.cli import run; run()", *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _workers(args, count=2):
    """Starts ``count`` workers of one MultiWorkerMirroredStrategy cluster on loopback."""
    hosts = [f"127.0.0.1:{p}" for p in testing.loopback_ports(count)]
    return [_cli([*args, "--strategy=multi_worker"], {"TF_CONFIG": json.dumps(
        {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})}) for i in range(count)]


def _finish(procs):
    outs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def _weights(path):
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda k, v: out.__setitem__(k, np.array(v, np.float64))
                     if isinstance(v, h5py.Dataset) and v.dtype.kind == "f" else None)
    return out


def _update(start, end):
    return np.concatenate([(end[k] - start[k]).ravel() for k in sorted(start)])


def test_strategies_by_name_and_their_errors(monkeypatch):
    strategy = distribute.make("default")
    assert distribute.describe(strategy, "default", 100) == {
        "strategy": "default", "replicas": 1, "workers": 1, "global_batch": 100, "per_replica_batch": 100}
    assert distribute.is_chief(strategy)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.make("multi_worker")
    with pytest.raises(ValueError, match="Unknown strategy"):
        distribute.make("tpu")


@pytest.mark.parametrize("name, weights", [
    ("apegan_mnist", "generator.weights.h5"),
    pytest.param("classifier_a_mnist", "model.weights.h5", marks=pytest.mark.slow)])
def test_two_workers_train_as_one_process_with_the_global_batch(real_data_dir, tmp_path, name, weights):
    """APE-GAN (two optimizers, BatchNorm, a custom train_step) on two workers with global batch 16 ends where
    one process does, to 1% of the update: the losses are scaled to the global batch and BatchNorm uses the
    global batch's moments; what remains is the order of floating-point sums (all-reduce, E[x^2] - E[x]^2),
    which Adam's first steps amplify. Classifier A's dropout draws one mask for every replica from the shared
    seed state (Keras' Dropout), so there only the size of the update is compared."""
    runs = {k: str(tmp_path / k) for k in ("init", "one", "two")}
    # The initial weights and the one-process run are independent: they share the two cores.
    _finish([_cli(["train", name, f"--workdir={runs['init']}", "--epochs=0", "--batch_size=16"]),
             _cli(["train", name, f"--workdir={runs['one']}", "--epochs=2", *TRAIN])])
    _finish(_workers(["train", name, f"--workdir={runs['two']}", "--epochs=2", *TRAIN]))
    init, one, two = (_weights(os.path.join(runs[k], "export", weights)) for k in ("init", "one", "two"))
    u1, u2 = _update(init, one), _update(init, two)
    if name == "apegan_mnist":
        assert np.linalg.norm(u2 - u1) / np.linalg.norm(u1) < 0.01
    else:
        assert abs(np.linalg.norm(u2) / np.linalg.norm(u1) - 1) < 0.1
    card = json.load(open(os.path.join(runs["two"], "export", "model_card.json")))
    assert card["training"]["distribution"] == {"strategy": "multi_worker", "replicas": 2, "workers": 2,
                                                "global_batch": 16, "per_replica_batch": 8}


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_last_checkpoint(real_data_dir, tmp_path):
    """Worker 1 is killed after the first epoch's checkpoint; both restart with --resume, continue from it and
    end with the weights of a run that was never killed."""
    args = ["train", "classifier_a_mnist", "--epochs=3", *TRAIN]
    whole = str(tmp_path / "whole")
    _finish(_workers([*args, f"--workdir={whole}"]))
    killed = str(tmp_path / "killed")
    procs = _workers([*args, f"--workdir={killed}"])
    state, deadline = os.path.join(killed, "state.json"), time.time() + TIMEOUT
    while not (os.path.exists(state) and json.load(open(state))["epoch"] >= 1):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "no checkpoint was written"
        time.sleep(0.2)
    for p in procs[::-1]:  # worker 1 first; the chief cannot go on without it
        p.kill()
        p.communicate(timeout=TIMEOUT)
    epoch = json.load(open(state))["epoch"]
    assert 1 <= epoch < 3
    outs = _finish(_workers([*args, f"--workdir={killed}", "--resume"]))
    assert f"Resuming classifier_a_mnist from epoch {epoch}/3" in outs[0]
    a, b = (_weights(os.path.join(d, "export", "model.weights.h5")) for d in (whole, killed))
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-6


def test_mirrored_on_this_host_trains_and_says_so(tiny_data_dir, tmp_path):
    """MirroredStrategy takes every GPU of the host; on a CPU-only host that is one replica, and the card says it."""
    from tfdefense import cli

    workdir = str(tmp_path / "m")
    assert cli.main(["train", "classifier_c_mnist", f"--workdir={workdir}", "--epochs=1", "--steps_per_epoch=2",
                     "--strategy=mirrored"]) == 0
    card = json.load(open(os.path.join(workdir, "export", "model_card.json")))
    assert card["training"]["distribution"]["strategy"] == "mirrored"
    assert card["training"]["distribution"]["replicas"] >= 1
