import keras
import numpy as np
import pytest

from tfdefense.families.defensegan.minmax import minmax_attack


def _linear_models():
    """G maps 2-d codes linearly to images; C reads one pixel difference: easy to split."""
    keras.utils.set_random_seed(0)
    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(784), keras.layers.Reshape((28, 28, 1))])
    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    return generator, classifier


def test_pairs_become_valid_and_some_split():
    generator, classifier = _linear_models()
    result = minmax_attack(generator, classifier, n_pairs=16, latent_dim=2, steps=150, learning_rate=0.05,
                           eta2_per_pixel=1e-3, valid_mse=2e-3)
    assert result["z"].shape == (16, 2) and result["z_prime"].shape == (16, 2)
    assert 0.5 <= result["valid_fraction"] <= 1.0
    assert 0.0 <= result["different_fraction"] <= 1.0 and np.isfinite(result["mean_kl"])


def test_bad_settings():
    generator, classifier = _linear_models()
    with pytest.raises(ValueError):
        minmax_attack(generator, classifier, n_pairs=0)
