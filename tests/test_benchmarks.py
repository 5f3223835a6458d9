"""The benchmarks' tables, plots and profiles on made-up results or tiny models (the numbers
themselves are measurements, never asserted)."""

import functools
import importlib.util
import os

from tfdefense.evaluation import plots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)  # a benchmark defines absl flags: load each once per process
def _module(name="purification_cost"):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESULT = {"dataset": "mnist", "eps": 0.3, "seed": 0, "rows": [
    {"method": "aegan", "restarts": 1, "steps": 10, "gradient_steps": 10, "n": 4, "images_per_s": 100.0,
     "clean": 0.99, "gray_fgsm": 0.8, "white_fgsm": 0.7},
    {"method": "aegan", "restarts": 1, "steps": 0, "gradient_steps": 0, "n": 4, "images_per_s": 300.0,
     "clean": 0.99, "gray_fgsm": 0.75, "white_fgsm": 0.7},
    {"method": "defensegan", "restarts": 10, "steps": 200, "gradient_steps": 2000, "n": 2, "images_per_s": 1.0},
    {"method": "apegan", "restarts": 0, "steps": 0, "gradient_steps": 0, "n": 4, "images_per_s": 5000.0,
     "clean": 0.98, "gray_fgsm": 0.9, "white_fgsm": 0.1}]}


def test_table2_puts_paper_values_beside_measured_ones(tmp_path):
    text = _module().table2_markdown(RESULT)
    assert "| AE-GAN+rs | 1 | 10 | 4 | 100.0 | 0.990 (0.982) | 0.700 (0.984) | 0.800 (0.880) |" in text
    assert "| Defense-GAN | 10 | 200 | 2 | 1.0 | - | - | - |" in text  # no paper value, no accuracy
    assert "| APE-GAN | 0 | 0 | 4 | 5000.0 | 0.980 | 0.100 | 0.900 |" in text  # one pass: no search


def test_accuracy_vs_compute_plot(tmp_path):
    path = plots.accuracy_vs_compute(str(tmp_path / "plot.png"), RESULT)
    assert os.path.getsize(path) > 1000


def test_layer_profile_covers_every_decoder_layer_and_its_flops():
    from tfdefense.defense import networks
    from tfdefense.defense import cost

    decoder = networks.decoder(latent_dim=8, filters=4)
    rows = _module("purification_speed").layer_profile(decoder, batch=2, gflops_matmul=100.0, min_seconds=0.01)
    assert [r["layer"] for r in rows] == [layer.name for layer in decoder.layers]
    assert sum(r["flops_per_image"] for r in rows) == 2 * cost.forward_flops(decoder)
    assert abs(sum(r["share_of_time"] for r in rows) - 1) < 0.01 and all(r["ms"] > 0 for r in rows)


def test_fmdefense_cost_counts_every_morph_through_decoder_and_classifier():
    import keras

    from tfdefense.families.fmdefense import build_defended
    from tfdefense.families.fmdefense.model import FMDefense
    from tfdefense.defense import cost

    networks = FMDefense.from_config_dict({"latent_dim": 3, "code_dim": 2, "filters": 2, "hidden": 8,
                                           "disc_units": 8, "disc_depth": 1})
    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    flops = {m: _module()._morph_detector_flops(build_defended(networks, classifier, morphs=m, codes=[0, 2]))
             for m in (5, 10)}
    per_morph = cost.forward_flops(networks.decoder) + cost.forward_flops(classifier)
    assert flops[10] - flops[5] == 2 * 5 * per_morph  # two codes, five more morphs each



def test_analysis_benchmarks_share_their_flags():
    """aegan_decompose.py and projection_check.py import benchmarks/analysis_common.py as scripts do."""
    import subprocess
    import sys

    for name in ("aegan_decompose", "projection_check"):
        out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", f"{name}.py"), "--helpfull"],
                             capture_output=True, text=True, timeout=120)
        assert "Traceback" not in out.stderr, out.stderr  # absl's --help exits 1 by design
        assert "analysis_common:" in out.stdout and "--[no]update_card" in out.stdout


def test_cost_table_row_reads_a_card_cost_and_marks_what_was_not_measured():
    figures = {"images_per_s": {"1": 40.0, "128": 1234.5}, "fraction_of_fp32_matmul": 0.612, "fp32_matmul_gflops": 204.9,
               "latency_ms": {"first_image": {"in_process": {"p50": 2.0}, "exported": {"p50": 2.2},
                                              "exported_over_in_process": 1.1}},
               "export": {"variables_to_weights": 1.001, "weights_mb": 6.0, "saved_model_mb": 6.75},
               "op_profile": {"ops": [{"op": "_MklNativeFusedConv2D", "share": 0.64}],
                              "flop_ops": {"fraction_of_fp32_matmul": 0.91}}}
    cost = {"batches": [1, 128], "flops_per_image": {"total": 1.9e9}, "recommended_policy": "mixed_bfloat16",
            "policies": {"float32": figures,
                         "mixed_bfloat16": {"images_per_s": {"128": 2000.0}, "accuracy_move": 0.0033}}}
    row = _module("cost_table").row("diffpure_mnist", cost)
    assert row == ("| diffpure_mnist | 1.9 | 40.0 / 1,234.5 | 0.61 (205) | 0.91 | FusedConv2D 64% | 2,000.0 "
                   "| 0.3 pt, mixed_bfloat16 | 2.0 / 2.2 (1.10) | 1.00, 1.12 |")
    bare = _module("cost_table").row("x", {"batches": [128], "flops_per_image": {"total": 1e6},
                                           "policies": {"float32": {"images_per_s": {"128": 5.0}}}})
    assert bare == "| x | 0.001 | - / 5.0 | - (-) | - | - - | - | -, - | - / - (-) | -, - |"


def test_before_after_compares_two_sides_on_the_same_labels(monkeypatch):
    import numpy as np

    from tfdefense.evaluation import harness

    module = _module("before_after")
    monkeypatch.setattr(harness, "sample", lambda dataset, n, seed: (np.zeros((n, 28, 28, 1), np.float32),
                                                                     np.zeros(n, np.int64)))
    sides = iter([{"images_per_s": 10.0, "matmul_gflops": 100.0, "labels": [1, 2, 3, 4]},
                  {"images_per_s": 30.0, "matmul_gflops": 150.0, "labels": [1, 2, 3, 0]}])
    monkeypatch.setattr(module, "run_side", lambda tree, name, images, seconds, policy="": next(sides))
    row = module.compare("apegan_mnist", "/nowhere", n=4, rounds=1, seconds=0.0)
    assert row["speedup"] == 3.0 and row["matmul_normalized_speedup"] == 2.0 and row["label_agreement"] == 0.75
    assert "labels" not in row["before"] and "labels" not in row["after"]
    for side in ("before", "after"):
        row[side].update(single_image_p50_ms=5.0, accuracy=1.0, flagged=0.0)
    table = module.markdown([row]).splitlines()
    assert len(table) == 3 and table[2].startswith("| apegan_mnist | 4 | 10.0 | 30.0 | 3.00x | 2.00x |")
    missing = module.markdown([{"name": "new_entry", "n": 4, "error": "new_entry under /t failed: WeightsError: no weights at that commit. Train it"}]).splitlines()[2]
    assert missing.startswith("| new_entry | 4 | not run: no weights at that commit |") and missing.count("|") == 11
