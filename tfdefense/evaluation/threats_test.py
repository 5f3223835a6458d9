import keras
import numpy as np
import pytest

from tfdefense import testing
from tfdefense.evaluation import attacks, threats
from tfdefense.defense import networks
from tfdefense.families.aegan.defended import build_defended
from tfdefense.families.classifiers import builders as cbuilders


def identity_defense(classifier):
    """G(F(x)) = x exactly, so the search never moves: an identity purifier."""
    encoder = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()])
    decoder = keras.Sequential([keras.Input((784,)), keras.layers.Reshape((28, 28, 1))])
    return build_defended(encoder, decoder, classifier, steps=2, threshold=-1.0)  # search everything


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(0)
    return cbuilders.classifier_c(units=16)


@pytest.mark.parametrize("bpda", ["identity", "gfx"])
def test_bpda_through_identity_purifier_equals_plain_attack(classifier, bpda):
    x = testing.tiny_images(6) * 0.8 + 0.1
    y = np.argmax(np.asarray(classifier(x)), 1)
    defense = identity_defense(classifier)
    plain = attacks.pgd(threats.gray_box_fn(defense), x, y, eps=0.1, nb_iter=5, seed=1)
    white = attacks.pgd(threats.white_box_fn(defense, bpda=bpda), x, y, eps=0.1, nb_iter=5, seed=1)
    np.testing.assert_allclose(white, plain, atol=1e-5)


def test_white_box_gradient_is_nonzero_through_a_real_search(classifier):
    keras.utils.set_random_seed(0)
    defense = build_defended(networks.encoder(4, 2), networks.decoder(4, 2), classifier, steps=3, threshold=-1.0)
    x = testing.tiny_images(2)
    y = np.array([0, 1])
    assert threats.input_gradient_norm(threats.white_box_fn(defense), x, y) > 0
    assert threats.input_gradient_norm(threats.white_box_fn(defense, bpda="identity"), x, y) > 0


def test_eot_default_and_bad_settings(classifier):
    dec = networks.decoder(4, 2)
    from tfdefense.defense.defended import DefendedClassifier
    from tfdefense.purification import LatentSearchPurifier

    random_start = DefendedClassifier(classifier, LatentSearchPurifier(dec, None, steps=1, restarts=2))
    assert random_start.purifier.random and random_start.purifier.eot_samples == 4
    assert threats.eot_count(random_start) == 4 and threats.eot_count(random_start, 2) == 2
    assert threats.eot_count(identity_defense(classifier), 8) == 1  # nothing random to average over
    assert threats.gradient_kind(random_start) == "bpda:identity"  # its surrogate is the identity
    fn = threats.white_box_fn(random_start)  # identity BPDA with EOT
    assert fn(testing.tiny_images(2)).shape == (2, 10)
    with pytest.raises(ValueError, match="bpda"):
        threats.white_box_fn(random_start, bpda="gfy")
    with pytest.raises(ValueError, match="eot"):
        threats.white_box_fn(random_start, eot=-1)


def test_bpda_identity_is_honored_for_a_differentiable_purifier(classifier):
    """The weak reference beside DiffPure's exact attack: asking for identity must not run the exact one."""
    import tensorflow as tf

    from tfdefense.defense.defended import DefendedClassifier
    from tfdefense.purification.reformer import ModelPurifier

    halve = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(0.5)])
    model = DefendedClassifier(classifier, ModelPurifier(halve))
    assert threats.gradient_kind(model) == "exact"
    assert threats.gradient_kind(model, "identity") == "bpda:identity"
    x = tf.constant(np.random.default_rng(0).random((2, 28, 28, 1)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        exact, identity = (tf.reduce_sum(threats.purified_fn(model, bpda=b)(x)) for b in (None, "identity"))
    np.testing.assert_allclose(tape.gradient(exact, x), 0.5)  # d(x/2)/dx
    np.testing.assert_allclose(tape.gradient(identity, x), 1.0)
