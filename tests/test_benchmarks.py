"""The cost benchmark's table and plot, on a made-up result (the benchmark itself is a measurement)."""

import importlib.util
import os

from tfdefense import plots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module():
    spec = importlib.util.spec_from_file_location("purification_cost",
                                                  os.path.join(ROOT, "benchmarks", "purification_cost.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESULT = {"dataset": "mnist", "eps": 0.3, "seed": 0, "rows": [
    {"method": "aegan", "restarts": 1, "steps": 10, "gradient_steps": 10, "n": 4, "images_per_s": 100.0,
     "clean": 0.99, "gray_fgsm": 0.8, "white_fgsm": 0.7},
    {"method": "aegan", "restarts": 1, "steps": 0, "gradient_steps": 0, "n": 4, "images_per_s": 300.0,
     "clean": 0.99, "gray_fgsm": 0.75, "white_fgsm": 0.7},
    {"method": "defensegan", "restarts": 10, "steps": 200, "gradient_steps": 2000, "n": 2, "images_per_s": 1.0}]}


def test_table2_puts_paper_values_beside_measured_ones(tmp_path):
    text = _module().table2_markdown(RESULT)
    assert "| AE-GAN+rs | 1 | 10 | 4 | 100.0 | 0.990 (0.982) | 0.700 (0.984) | 0.800 (0.880) |" in text
    assert "| Defense-GAN | 10 | 200 | 2 | 1.0 | - | - | - |" in text  # no paper value, no accuracy


def test_accuracy_vs_compute_plot(tmp_path):
    path = plots.accuracy_vs_compute(str(tmp_path / "plot.png"), RESULT)
    assert os.path.getsize(path) > 1000
