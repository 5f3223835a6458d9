import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdefense import testing
from tfdefense.defense import networks
from tfdefense.families.aegan.defended import build_defended
from tfdefense.families.classifiers import builders as cbuilders
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.purification import ModelPurifier, LatentSearchPurifier, ReconstructionDetector


@pytest.fixture(scope="module")
def parts():
    keras_seed = 0
    tf.keras.utils.set_random_seed(keras_seed)
    return networks.encoder(4, 2), networks.decoder(4, 2), cbuilders.classifier_c(units=4)


def test_purifier_outputs_and_lower_error_with_steps(parts):
    enc, dec, _ = parts
    x = testing.tiny_images(3)
    zero = LatentSearchPurifier(dec, enc, steps=0)(x)
    searched = LatentSearchPurifier(dec, enc, steps=10, step_size=0.01)(x)
    assert zero["images"].shape == (3, 28, 28, 1) and zero["codes"].shape == (3, 4)
    assert np.all(searched["errors"].numpy() <= zero["errors"].numpy() + 1e-6)


def test_random_restarts_reproducible_per_seed(parts):
    _, dec, _ = parts
    purifier = LatentSearchPurifier(dec, None, steps=2, step_size=0.01, restarts=3)
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


@pytest.mark.parametrize("bad,match", [
    (np.zeros((1, 28, 28, 1), np.complex64), "complex64"),
    (np.zeros((1, 28, 28, 1), np.uint8), "uint8"),
    (np.zeros((1, 28, 28, 1), bool), "bool"),
    (np.zeros((0, 28, 28, 1), np.float32), "empty"),
    (None, "None"),
    (0.5, r"shape \[N, 28, 28, 1\]; got \(\)"),
    (np.full((1, 28, 28, 1), 1.0000001, np.float32), "1.00000012"),
    (np.full((1, 28, 28, 1), np.nan, np.float32), "NaN"),
])
def test_predict_checks_input_like_defend(parts, bad, match):
    """keras' predict must not be a weaker door than defend (no silent casts, no Keras internals)."""
    enc, dec, clf = parts
    model = build_defended(enc, dec, clf, steps=1, threshold=0.1)
    for fn in (lambda b: model.predict(b, verbose=0), model.defend):
        with pytest.raises(ValueError, match=match):
            fn(bad)


def test_bare_classifier_is_a_defense_with_the_same_checks(parts):
    _, _, clf = parts
    model = DefendedClassifier(clf)
    x = testing.tiny_images(2)
    out = model.defend(x)
    np.testing.assert_allclose(out["logits"], clf(x, training=False), atol=1e-6)
    np.testing.assert_array_equal(out["purified"], x)
    assert not out["is_adversarial"].any() and not out["rejected"].any() and model.thresholds == {}
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        model(np.full((1, 28, 28, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match="uint8"):
        model(np.zeros((1, 28, 28, 1), np.uint8))


def test_rejecting_detector_sets_rejected_and_bypass_is_not_rejection(parts):
    enc, dec, clf = parts
    x = testing.tiny_images(3)
    aegan = build_defended(enc, dec, clf, steps=1, threshold=-1.0).defend(x)  # flags all, purifies them
    assert aegan["is_adversarial"].all() and not aegan["rejected"].any()
    magnet = DefendedClassifier(clf, ModelPurifier(keras.Sequential([enc, dec])),
                                [ReconstructionDetector(None, "mse", threshold=-1.0),
                                 ReconstructionDetector(None, "l1", threshold=None)])
    out = magnet.defend(x)
    assert out["rejected"].all() and out["is_adversarial"].all()
    assert set(magnet.thresholds) == {"mse", "l1"}
    with pytest.raises(AttributeError, match="thresholds"):
        magnet.threshold
    with pytest.raises(ValueError, match="no detector named"):
        magnet.set_thresholds({"l2": 0.1})
