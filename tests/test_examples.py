"""The examples build what they promise (no server needed)."""

import importlib.util
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "..", "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_serving_client_builds_predict_request():
    client = _load("serving_client")
    images = np.zeros((2, 28, 28, 1), np.float32)
    request = client.build_predict_request(images, "aegan_mnist", "serving_uint8")
    assert request.model_spec.name == "aegan_mnist" and request.model_spec.signature_name == "serving_uint8"
    assert [d.size for d in request.inputs["images"].tensor_shape.dim] == [2, 28, 28, 1]
    body = client.rest_body(images[:1])
    assert np.asarray(body["instances"]).shape == (1, 28, 28, 1)


def test_serving_client_writes_the_body_and_says_when_no_server_answers(real_data_dir, tmp_path, monkeypatch):
    import socket
    import sys

    import pytest

    client = _load("serving_client")
    with socket.socket() as s:  # a free port on loopback, nothing listening there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    body = tmp_path / "body.json"
    monkeypatch.setattr(sys, "argv", ["serving_client.py", "--n=1", f"--body={body}", f"--server=127.0.0.1:{port}"])
    with pytest.raises(SystemExit, match="No TF Serving answered at 127.0.0.1"):
        client.main()
    import json
    assert np.asarray(json.load(open(body))["instances"]).shape == (1, 28, 28, 1)


def test_protect_your_classifier_runs_end_to_end(tmp_path):
    """examples/protect_your_classifier.py on tiny sizes: a softmax classifier on 32x32x3 arrays, MagNet and
    APE-GAN trained for it, gray- and white-box evaluated, exported, the served labels equal to Python's."""
    results = _load("protect_your_classifier").main(["--tiny", f"--workdir={tmp_path}"])
    assert set(results) == {"magnet", "apegan"}
    for family, r in results.items():
        assert r["served_labels_match"], family
        assert {"gray_fgsm", "gray_pgd", "white_fgsm", "white_pgd"} <= set(r)
