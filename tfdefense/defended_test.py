import numpy as np
import pytest
import tensorflow as tf

from tfdefense import testing
from tfdefense import networks
from tfdefense.aegan.defended import build_defended
from tfdefense.classifiers import builders as cbuilders
from tfdefense.defended import DefendedClassifier
from tfdefense.purification import Purifier


@pytest.fixture(scope="module")
def parts():
    keras_seed = 0
    tf.keras.utils.set_random_seed(keras_seed)
    return networks.encoder(4, 2), networks.decoder(4, 2), cbuilders.classifier_c(units=4)


def test_purifier_outputs_and_lower_error_with_steps(parts):
    enc, dec, _ = parts
    x = testing.tiny_images(3)
    zero = Purifier(dec, enc, steps=0)(x)
    searched = Purifier(dec, enc, steps=10, step_size=0.01)(x)
    assert zero["images"].shape == (3, 28, 28, 1) and zero["codes"].shape == (3, 4)
    assert np.all(searched["errors"].numpy() <= zero["errors"].numpy() + 1e-6)


def test_random_restarts_reproducible_per_seed(parts):
    _, dec, _ = parts
    purifier = Purifier(dec, None, steps=2, step_size=0.01, restarts=3)
    x = testing.tiny_images(2)
    a, b, c = purifier(x, seed=1), purifier(x, seed=1), purifier(x, seed=2)
    np.testing.assert_array_equal(a["codes"].numpy(), b["codes"].numpy())
    assert not np.allclose(a["codes"].numpy(), c["codes"].numpy())


def test_bypass_routes_by_threshold(parts):
    enc, dec, clf = parts
    x = testing.tiny_images(4)
    never = build_defended(enc, dec, clf, steps=5, threshold=10.0).defend(x)
    always = build_defended(enc, dec, clf, steps=5, threshold=-1.0).defend(x)
    cheap = np.asarray(dec(enc(x, training=False), training=False))
    np.testing.assert_allclose(never["purified"], cheap, atol=1e-6)
    assert not never["is_adversarial"].any() and always["is_adversarial"].all()
    assert not np.allclose(always["purified"], cheap)
    assert set(never) == {"logits", "label", "purified", "score", "is_adversarial", "rejected"}
    np.testing.assert_array_equal(never["label"], never["logits"].argmax(-1))


def test_search_everything_without_threshold(parts):
    enc, dec, clf = parts
    model = build_defended(enc, dec, clf, steps=3, threshold=None)
    out = model.defend(testing.tiny_images(2))
    assert not out["is_adversarial"].any()
    assert model(testing.tiny_images(2)).shape == (2, 10)
    assert model.predict(testing.tiny_images(3), verbose=0).shape == (3, 10)


@pytest.mark.parametrize("bad,match", [
    (np.full((1, 28, 28, 1), np.nan, np.float32), "NaN"),
    (np.full((1, 28, 28, 1), 2.0, np.float32), r"\[0, 1\]"),
    (np.zeros((0, 28, 28, 1), np.float32), "empty"),
    (np.zeros((2, 28, 28), np.float32), "shape"),
    (np.zeros((28, 28, 1), np.float32), "batch"),
    (np.zeros((1, 28, 28, 1), np.uint8), "uint8"),
])
def test_bad_input_is_a_clear_error(parts, bad, match):
    enc, dec, clf = parts
    with pytest.raises(ValueError, match=match):
        build_defended(enc, dec, clf, steps=1, threshold=0.1).defend(bad)


@pytest.mark.parametrize("bad,match", [(np.full((1, 28, 28, 1), np.inf, np.float32), "NaN or Inf"),
                                       (np.full((1, 28, 28, 1), -0.5, np.float32), "below 0")])
def test_graph_rejects_bad_input(parts, bad, match):
    enc, dec, clf = parts
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        build_defended(enc, dec, clf, steps=1, threshold=0.1)(bad)


def test_serialization(parts, tmp_path):
    enc, dec, clf = parts
    model = build_defended(enc, dec, clf, steps=2, threshold=0.2)
    restored = testing.run_serialization_test(model, tmp_path, testing.tiny_images(2))
    assert isinstance(restored, DefendedClassifier) and restored.threshold == pytest.approx(0.2)
