"""The shipped MagNet models: load, defend, reject little clean data, export."""

import numpy as np
import pytest
import tensorflow as tf

import tfdefense
from tfdefense import datasets
from tfdefense.evaluation import threats
from tfdefense.zoo import store

pytestmark = pytest.mark.pretrained  # needs the published weights (through tfdefense.store)


@pytest.mark.parametrize("name", ("magnet_mnist", "magnet_fmnist"))
def test_magnet_defends_and_rejects_little_clean_data(real_data_dir, name):
    model = tfdefense.load(name)
    card = store.card(name)
    assert model.thresholds == pytest.approx(card["inference"]["thresholds"])
    assert threats.gradient_kind(model) == "exact"
    x, y = datasets.load(card["dataset"], "dev")
    out = model.defend(x[:500])
    clean = card["measured"].get("clean_accuracy_defended", {}).get("value", 0.9 if "fmnist" not in name else 0.8)
    # 500 images: binomial noise about 0.015 around the card's n=1000 figure.
    assert np.mean(out["label"] == y[:500]) >= clean - 0.05
    assert out["rejected"].mean() <= 0.02, "thresholds at 0.1% FPR each should reject about 0.2% of clean images"
    # The reformer is differentiable: the white-box gradient is the exact one and non-zero.
    assert threats.input_gradient_norm(threats.white_box_fn(model), x[:8], y[:8]) > 0
    # The graph the export serves rejects and labels exactly as defend does.
    served = model.pipeline(tf.constant(x[:8]))
    np.testing.assert_array_equal(np.asarray(served["rejected"]), out["rejected"][:8])
    np.testing.assert_array_equal(np.asarray(served["label"]), out["label"][:8])
