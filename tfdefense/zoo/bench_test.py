import json
import subprocess
import sys

import numpy as np
import pytest

from tfdefense.defense import networks
from tfdefense.families.aegan.defended import build_defended
from tfdefense.families.classifiers import builders as cbuilders
from tfdefense.utils import timing
from tfdefense.zoo import bench


def test_one_policy_figures_of_a_tiny_defense():
    model = build_defended(networks.encoder(4, 2), networks.decoder(4, 2), cbuilders.classifier_c(units=4),
                           steps=2, threshold=0.25)
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    out = bench.measure_policy(model, x, [1, 4], matmul=100.0, seconds=0.0, max_runs=2, ops=True)
    assert set(out["images_per_s"]) == {"1", "4"} and all(v > 0 for v in out["images_per_s"].values())
    flops = model.flops()
    # The FLOPs the pipeline ran lie between the bypass path and the full search, by the flagged fraction.
    assert flops["unflagged"] <= out["executed_flops_per_image"] <= flops["total"]
    assert out["fraction_of_fp32_matmul"] == pytest.approx(out["gflops_per_s"] / 100.0, abs=1e-3)
    latency = out["latency_ms"]["first_image"]
    assert latency["in_process"]["runs"] == 2 and latency["exported"]["p50"] > 0
    # Random images are flagged: the search path is timed on its own.
    assert out["flagged"] > 0 and "exported" in out["latency_ms"]["flagged_image"]
    assert out["export"]["variables_to_weights"] <= 1.1 + 8_000 / (1e6 * out["export"]["weights_mb"])
    assert out["labels"].shape == (4,)
    assert out["pipeline_traces"] <= 2  # batch 1, then one generalized trace for every other size
    # The served graph op by op: the latent search's decoder and the classifier are convolutions and matmuls.
    profile = out["op_profile"]
    assert profile["batch"] == 4 and profile["seconds"] > 0
    assert sum(op["share"] for op in profile["ops"]) <= 1.001
    assert 0 < profile["flop_ops"]["share"] <= 1 and profile["flop_ops"]["gflops_per_s"] > 0
    assert any(any(f in op["op"] for f in bench.FLOP_OPS) for op in profile["ops"])


def test_a_policy_that_fails_is_recorded_and_the_others_still_run(monkeypatch):
    model = build_defended(networks.encoder(4, 2), networks.decoder(4, 2), cbuilders.classifier_c(units=4),
                           steps=2, threshold=0.25)

    def load(name, source, policy, overrides):
        if policy == "mixed_bfloat16":
            raise TypeError("this layer cannot run in bfloat16")
        return model

    monkeypatch.setattr(bench, "_load", load)
    readings = iter([100.0, 100.0, 90.0, 150.0])  # the run's own two, then before and after float32's timings
    monkeypatch.setattr(timing, "matmul_gflops", lambda dtype: next(readings, 100.0))
    result = bench.run("tiny", batches=(2,), policies=("mixed_bfloat16", "float32"), seconds=0.0, max_runs=2,
                       exported=False)
    assert result["policies"]["mixed_bfloat16"] == {"error": "TypeError: this layer cannot run in bfloat16"}
    assert result["policies"]["float32"]["images_per_s"]["2"] > 0
    float32 = result["policies"]["float32"]
    assert float32["fp32_matmul_gflops_before_after"] == [90.0, 150.0] and float32["fp32_matmul_gflops"] == 150.0
    with pytest.raises(RuntimeError, match="no policy ran"):
        bench.run("tiny", batches=(2,), policies=("mixed_bfloat16",), seconds=0.0, max_runs=2, exported=False)


def test_policy_accuracy_on_the_same_inputs_decides_the_recommended_policy(monkeypatch):
    from tfdefense import testing

    model = build_defended(networks.encoder(4, 2), networks.decoder(4, 2), cbuilders.classifier_c(units=4),
                           steps=2, threshold=0.25)
    x, _ = testing.blob_images(6)
    y = np.asarray(model.defend(x)["label"])  # the float32 labels: clean accuracy 1.0
    monkeypatch.setattr(bench, "_load", lambda name, source, policy, overrides: model)
    monkeypatch.setattr(timing, "matmul_gflops", lambda dtype: 100.0)
    monkeypatch.setattr(bench, "labelled_images", lambda name, n: (x[:n], y[:n]))
    result = bench.run("tiny", batches=(2,), policies=("float32", "mixed_bfloat16"), seconds=0.0, max_runs=2,
                       exported=False, accuracy_n=6)
    f32, bf16 = result["policies"]["float32"], result["policies"]["mixed_bfloat16"]
    assert set(f32["accuracy"]) == {"clean", "fgsm", "pgd"} and f32["accuracy"]["clean"]["accuracy"] == 1.0
    assert bf16["accuracy_move"] == 0.0 and bf16["labels_changed"] == 0  # the same model twice
    assert result["accuracy_images"]["n"] == 6 and result["recommended_policy"] in ("float32", "mixed_bfloat16")
    bf16["accuracy_move"] = 0.006
    assert bench.recommended_policy(result) == "float32"
    bf16["accuracy_move"], bf16["images_per_s"]["2"] = 0.005, f32["images_per_s"]["2"] + 1
    assert bench.recommended_policy(result) == "mixed_bfloat16"


@pytest.mark.pretrained
def test_bench_command_prints_json_for_an_entry():
    out = subprocess.run([sys.executable, "-c", "from tfdefense.cli import run; run()", "bench", "apegan_mnist",
                          "--batch=1,8", "--policy=float32,mixed_bfloat16", "--seconds=0", "--no_export"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["flops_per_image"]["total"] > result["flops_per_image"]["classifier"] > 0
    assert set(result["policies"]) == {"float32", "mixed_bfloat16"}
    assert 0.9 <= result["policies"]["mixed_bfloat16"]["label_agreement_with_float32"] <= 1.0
    bad = subprocess.run([sys.executable, "-c", "from tfdefense.cli import run; run()", "bench", "apegan_mnist",
                          "--policy=float8"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "unknown dtype policy" in bad.stderr
    bad = subprocess.run([sys.executable, "-c", "from tfdefense.cli import run; run()", "bench", "apegan_mnist",
                          "--ops", "--no_export"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "--ops profiles the exported graph" in bad.stderr
