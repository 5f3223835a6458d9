import numpy as np

from tfdefense.evaluation import plots


def test_every_figure_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    clean, adv = rng.random(50), {0.1: rng.random(50) + 0.5, 0.3: rng.random(50) + 1.0}
    paths = [plots.detector_figure(str(tmp_path / "det.png"), clean, adv, threshold=0.9, metric="l1"),
             plots.accuracy_vs_eps(str(tmp_path / "eps.png"), [0.0, 0.1], {"fgsm defended": [0.9, 0.5]}),
             plots.image_grid(str(tmp_path / "grid.png"), {"clean": rng.random((3, 28, 28, 1))})]
    for path in paths:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
