"""The shipped AE-GAN+rs models: load, defend, export."""

import subprocess

import numpy as np
import pytest

import tfdefense
from tfdefense import datasets
from tfdefense.evaluation import attacks
from tfdefense.zoo import export, registry, store

NAMES = ("aegan_mnist", "aegan_fmnist")

pytestmark = pytest.mark.pretrained  # needs the published weights (through tfdefense.store)


@pytest.mark.parametrize("name", NAMES)
def test_loads_and_defends(real_data_dir, name):
    model = tfdefense.load(name)
    card = store.card(name)
    assert model.thresholds == pytest.approx(card["inference"]["thresholds"])
    x, y = datasets.load(registry.get_entry(name)["metadata"]["dataset"], "dev")
    out = model.defend(x[:200])
    assert out["purified"].shape == (200, 28, 28, 1) and out["logits"].shape == (200, 10)
    # 200 images: binomial noise about 0.025 around the card's n=1000 figure.
    assert np.mean(out["label"] == y[:200]) >= card["measured"]["clean_accuracy_defended"]["value"] - 0.06
    flagged = model.defend(x[:500])["is_adversarial"].mean()  # calibrated at 5% on validation images
    assert 0.01 <= flagged <= 0.12, f"clean false-positive rate {flagged:.3f} on dev"
    faster = tfdefense.load(name, steps=2, threshold=1.0)
    assert faster.purifier.steps == 2 and faster.threshold == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_clean_and_gray_box_accuracy(real_data_dir, name):
    model = tfdefense.load(name)
    card = store.card(name)
    x, y = datasets.load(card["dataset"], "dev")
    x, y = x[:300], y[:300]
    clean = np.mean(model.defend(x)["label"] == y)
    assert clean >= card["measured"]["clean_accuracy_defended"]["value"] - 0.05
    x_adv = attacks.fgsm(model.classifier, x, y, eps=0.3)
    assert np.mean(model.defend(x_adv)["label"] == y) > np.mean(np.argmax(model.classifier(x_adv), 1) == y) + 0.3


@pytest.mark.slow
def test_real_export_runs_in_the_session_loader(real_data_dir, tmp_path):
    model = tfdefense.load("aegan_mnist")
    path = export.export(model, str(tmp_path), "aegan_mnist")
    x, _ = datasets.load("mnist", "dev")
    np.save(tmp_path / "x.npy", x[:4])
    out = subprocess.run(["saved_model_cli", "run", "--dir", path, "--tag_set", "serve", "--signature_def",
                          "serving_default", "--inputs", f"images={tmp_path / 'x.npy'}", "--outdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), model.defend(x[:4])["logits"], atol=1e-4)
