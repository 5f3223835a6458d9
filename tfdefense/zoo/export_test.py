import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfdefense.zoo import export
from tfdefense.defense import networks
from tfdefense.families.aegan.defended import build_defended
from tfdefense.families.classifiers import builders as cbuilders

# Run in a fresh interpreter that cannot import tfdefense: what TF Serving has.
LOAD = """
import sys; sys.modules["tfdefense"] = None
import numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
out = m.signatures[sys.argv[3]](images=tf.constant(x))
np.savez(sys.argv[4], **{k: v.numpy() for k, v in out.items()})
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_defended(networks.encoder(4, 2), networks.decoder(4, 2), cbuilders.classifier_c(units=4),
                           steps=3, threshold=0.25)
    base = str(tmp_path_factory.mktemp("serving"))
    path = export.export(model, base, "tiny")
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    np.save(os.path.join(base, "x.npy"), x)
    return model, path, base, x


def _run_loaded(path, base, x_file, signature):
    out_file = os.path.join(base, f"out_{signature}.npz")
    proc = subprocess.run([sys.executable, "-c", LOAD, path, x_file, signature, out_file],
                          capture_output=True, text=True, timeout=300)
    return proc, (np.load(out_file) if proc.returncode == 0 else None)


def test_layout_and_versions(exported):
    _, path, base, _ = exported
    assert path == os.path.join(base, "tiny", "1")
    assert os.path.isfile(os.path.join(path, "saved_model.pb")) and os.path.isdir(os.path.join(path, "variables"))
    assert export.next_version(os.path.join(base, "tiny")) == 2


def test_every_weight_is_written_once(exported):
    # keras#23553: tracking the whole model as well wrote every weight twice (2.0x here before the fix).
    model, path, _, _ = exported
    weights = sum(v.numpy().nbytes for v in model.weights)
    folder = os.path.join(path, "variables")
    written = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if ".data-" in f)
    # The data shard also holds the checkpoint's object graph, a few KB whatever the model's size.
    assert written <= 1.1 * weights + 8_000 < 2 * weights, (written, weights)


def test_the_pipeline_graph_is_written_once(exported):
    """serving_default, serving_uint8 and purify call the one traced pipeline of serving_seeded: each is a thin
    wrapper. When every endpoint traced the pipeline itself, the graph held it four times (DiffPure's export
    was 44 MB of graph for 6 MB of weights)."""
    import re

    from tensorflow.core.protobuf import saved_model_pb2

    _, path, _, _ = exported
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    nodes = {fn.signature.name: len(fn.node_def) for fn in saved.meta_graphs[0].graph_def.library.function}
    pipelines = [n for k, n in nodes.items() if k.startswith("__inference_pipeline_")]
    assert len(pipelines) == 1, sorted(nodes)
    for endpoint in ("serve", "serve_uint8", "purify"):
        (size,) = [n for k, n in nodes.items() if re.fullmatch(f"__inference_{endpoint}_[0-9]+", k)]
        assert size < pipelines[0] / 4, (endpoint, size, pipelines[0])


def test_fresh_process_matches_in_process(exported):
    model, path, base, x = exported
    ref = model.defend(x)
    proc, out = _run_loaded(path, base, os.path.join(base, "x.npy"), "serving_default")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(out.files) == {"logits", "label", "purified", "score", "is_adversarial", "rejected"}
    np.testing.assert_allclose(out["logits"], ref["logits"], atol=1e-5)
    np.testing.assert_array_equal(out["is_adversarial"], ref["is_adversarial"])


def test_uint8_endpoint_scales(exported):
    model, path, base, x = exported
    x8 = (x * 255).round().astype(np.uint8)
    np.save(os.path.join(base, "x8.npy"), x8)
    proc, out = _run_loaded(path, base, os.path.join(base, "x8.npy"), "serving_uint8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(out["logits"], model.defend(x8 / np.float32(255))["logits"], atol=1e-4)


@pytest.mark.skipif(shutil.which("saved_model_cli") is None, reason="saved_model_cli not on PATH")
def test_session_loader_runs_and_rejects_bad_input(exported, tmp_path):
    model, path, base, x = exported
    cli = ["saved_model_cli", "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
           "--outdir", str(tmp_path), "--inputs"]
    ok = subprocess.run(cli + [f"images={os.path.join(base, 'x.npy')}"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), model.defend(x)["logits"], atol=1e-5)
    bad = np.zeros((2, 28, 28, 1), np.float32)
    bad[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    out = subprocess.run(cli + [f"images={tmp_path / 'nan.npy'}"], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "NaN or Inf" in out.stderr


def test_detect_and_purify_endpoints(exported):
    _, path, base, x = exported
    for sig, keys in (("detect", {"score", "is_adversarial", "rejected"}),
                      ("purify", {"purified", "score", "is_adversarial", "rejected"})):
        proc, out = _run_loaded(path, base, os.path.join(base, "x.npy"), sig)
        assert proc.returncode == 0 and set(out.files) == keys


def test_existing_version_is_not_overwritten(exported):
    model, path, base, _ = exported
    with pytest.raises(FileExistsError):
        export.export(model, base, "tiny", version=1)


def test_serving_seeded_draws_the_asked_for_randomness(exported):
    model, path, base, x = exported
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_seeded"]
    out = serve(images=tf.constant(x), seed=tf.constant(3))
    np.testing.assert_allclose(out["logits"].numpy(), model.defend(x, seed=3)["logits"], atol=1e-5)


def _batching_parameters():
    """The server's BatchingParameters message (session_bundle_config.proto, not shipped in
    tensorflow-serving-api), built from its declaration: four google.protobuf.Int64Value fields."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    proto = descriptor_pb2.FileDescriptorProto(name="batching_test.proto", package="tensorflow.serving",
                                               dependency=["google/protobuf/wrappers.proto"], syntax="proto3")
    message = proto.message_type.add(name="BatchingParameters")
    for number, field in enumerate(("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                                    "num_batch_threads"), 1):
        message.field.add(name=field, number=number, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                          type_name=".google.protobuf.Int64Value",
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))()


def test_export_all_writes_configs_the_server_parses(tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    def tiny(name):
        keras.utils.set_random_seed(0)
        return build_defended(networks.encoder(4, 2), networks.decoder(4, 2), cbuilders.classifier_c(units=4),
                              steps=2, threshold=0.25)

    written = export.export_all(str(tmp_path), names=["b_tiny", "a_tiny"], load=tiny)
    assert written == {n: str(tmp_path / n / "1") for n in ("b_tiny", "a_tiny")}
    config = text_format.Parse((tmp_path / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    assert [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config] == [
        ("a_tiny", "/models/a_tiny", "tensorflow"), ("b_tiny", "/models/b_tiny", "tensorflow")]
    batching = text_format.Parse((tmp_path / "batching.config").read_text(), _batching_parameters())
    assert batching.max_batch_size.value == 128 and batching.num_batch_threads.value == 2
    # Every exported entry runs in the TF1 session loader that tensorflow_model_server uses.
    x_file = str(tmp_path / "x.npy")
    np.save(x_file, np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32"))
    for path in written.values():
        cli = shutil.which("saved_model_cli") or os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
        proc = subprocess.run([cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def",
                               "serving_default", "--inputs", f"images={x_file}"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "label" in proc.stdout, proc.stderr[-2000:]


def test_an_export_follows_the_policy_bench_recommended(monkeypatch):
    from tfdefense.zoo import registry

    assert registry.recommended_policy({"measured": {"cost": {"recommended_policy": "mixed_bfloat16"}}}) == \
        "mixed_bfloat16"
    assert registry.recommended_policy({"measured": {"cost": {}}}) == "float32"
    assert registry.recommended_policy(None) == "float32"
    calls = []
    monkeypatch.setattr(registry, "load", lambda name, folder=None, **o: calls.append(o["dtype_policy"]))
    export.load_for_serving("x")
    export.load_for_serving("x", dtype_policy="float32")  # asked for: kept
    assert calls == ["recommended", "float32"]


@pytest.mark.pretrained
def test_load_builds_the_recommended_policy_only_when_asked():
    from tfdefense.zoo import registry

    assert registry.load("fmdefense_mnist").card["measured"]["cost"]["recommended_policy"] == "mixed_bfloat16"
    assert registry.load("fmdefense_mnist").classifier.dtype_policy.compute_dtype == "float32"
    assert registry.load("fmdefense_mnist", dtype_policy="recommended").classifier.dtype_policy.compute_dtype == \
        "bfloat16"
