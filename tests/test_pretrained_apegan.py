"""The shipped APE-GAN models: load, purify clean and noisy images, exact white-box gradient, bad input
(skipped where not trained yet)."""

import numpy as np
import pytest
import tensorflow as tf

import tfdefense
from tfdefense import datasets
from tfdefense.evaluation import attacks, threats
from tfdefense.zoo import store

pytestmark = pytest.mark.pretrained  # needs the published weights (through tfdefense.store)


@pytest.mark.parametrize("name", ("apegan_mnist", "apegan_fmnist"))
def test_apegan_purifies_clean_and_noisy_images(real_data_dir, name):
    model = tfdefense.load(name)
    card = store.card(name)
    x, y = datasets.load(card["dataset"], "dev")
    x, y = x[:500], y[:500]
    out = model.defend(x)
    clean = card["measured"].get("clean_accuracy_defended", {}).get("value", 0.9 if "fmnist" not in name else 0.8)
    # 500 images: binomial noise about 0.015 around the card's n=1000 figure.
    assert np.mean(out["label"] == y) >= clean - 0.05
    assert not out["rejected"].any() and out["purified"].shape == x.shape
    assert 0 <= out["purified"].min() and out["purified"].max() <= 1
    # The generator removes most of the Gaussian noise it never saw in training.
    noisy = attacks.gaussian_noise(None, x, seed=0)
    purified = model.defend(noisy)["purified"]
    assert np.mean((purified - x) ** 2) < 0.75 * np.mean((noisy - x) ** 2)  # Fashion-MNIST: 0.53
    # One forward pass, differentiable: white-box attacks take its exact, non-zero gradient.
    assert threats.gradient_kind(model) == "exact"
    assert threats.input_gradient_norm(threats.white_box_fn(model), x[:8], y[:8]) > 0
    # The graph the export serves gives the labels defend gives.
    served = model.pipeline(tf.constant(x[:8]))
    assert isinstance(served["label"], tf.Tensor)
    np.testing.assert_array_equal(np.asarray(served["label"]), out["label"][:8])


def test_apegan_rejects_bad_input(real_data_dir):
    model = tfdefense.load("apegan_mnist")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.defend(np.full((2, 28, 28, 1), 255.0, np.float32))
    with pytest.raises(ValueError, match="shape"):
        model.defend(np.zeros((2, 32, 32, 3), np.float32))
