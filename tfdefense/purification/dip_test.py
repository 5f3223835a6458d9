import numpy as np
import pytest

from tfdefense import testing
from tfdefense.families.classifiers import builders as cbuilders
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.purification.dip import DeepImagePrior, deep_image_prior


def test_fitting_reduces_error_and_is_reproducible():
    x, _ = testing.blob_images(2)
    _, err0 = deep_image_prior(x, steps=0, mse_stop=0.0)
    images, err = deep_image_prior(x, steps=60, learning_rate=0.02, mse_stop=0.0, channels=8, seed=3)
    again, _ = deep_image_prior(x, steps=60, learning_rate=0.02, mse_stop=0.0, channels=8, seed=3)
    assert images.shape == (2, 28, 28, 1)
    assert np.all(err.numpy() < 0.5 * err0.numpy())
    # Better than the all-black image (a saturated sigmoid output used to collapse there).
    assert np.all(err.numpy() < 0.25 * np.mean(np.square(x), axis=(1, 2, 3)))
    np.testing.assert_allclose(images.numpy(), again.numpy(), atol=1e-6)


def test_early_stop_at_mse_threshold():
    x, _ = testing.blob_images(1)
    _, err_loose = deep_image_prior(x, steps=200, learning_rate=0.02, mse_stop=0.05, channels=8)
    _, err_tight = deep_image_prior(x, steps=200, learning_rate=0.02, mse_stop=0.0, channels=8)
    assert float(err_loose[0]) < 0.05 and float(err_tight[0]) < float(err_loose[0])


def test_usable_with_any_classifier():
    model = DefendedClassifier(cbuilders.classifier_c(units=4), DeepImagePrior(steps=3, channels=4))
    out = model.defend(testing.tiny_images(2))
    assert out["logits"].shape == (2, 10) and not out["is_adversarial"].any()


def test_bad_settings():
    with pytest.raises(ValueError):
        deep_image_prior(testing.tiny_images(1), steps=-1)


def test_fits_a_thin_stroke_at_default_settings():
    # Mostly black, like MNIST: a saturating output used to collapse to the all-black image here.
    yy, xx = np.mgrid[:28, :28]
    ring = (np.abs(np.hypot(yy - 14, xx - 14) - 7) < 1.2).astype("float32")[None, :, :, None]
    _, err = deep_image_prior(ring, steps=100, mse_stop=0.0)
    assert float(err[0]) < 0.25 * float(np.mean(ring ** 2))
