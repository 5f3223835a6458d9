import keras
import numpy as np
import pytest

from tfdefense import testing
from tfdefense.evaluation import attacks


@pytest.fixture(scope="module")
def toy():
    """A linear logits model on 28x28x1 images: easy to fool."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    x = testing.tiny_images(16, seed=1) * 0.5 + 0.25
    y = np.argmax(np.asarray(model(x)), axis=1)  # labels the model gets right
    return model, x, y


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_linf_bound_holds_and_fools(toy, name):
    model, x, y = toy
    adv = attacks.ATTACKS[name](model, x, y, eps=0.1)
    assert np.max(np.abs(adv - x)) <= 0.1 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert np.mean(np.argmax(np.asarray(model(adv)), 1) != y) > 0.8


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_eps_zero_changes_nothing(toy, name):
    model, x, y = toy
    np.testing.assert_array_equal(attacks.ATTACKS[name](model, x, y, eps=0.0), x)


def test_cw_l2_finds_adversarials_on_a_toy_model(toy):
    model, x, y = toy
    adv = attacks.cw_l2(model, x, y, binary_search_steps=3, max_iterations=30, batch_size=8)
    fooled = np.argmax(np.asarray(model(adv)), 1) != y
    assert fooled.mean() > 0.8
    # Failed examples come back unchanged; successes are small perturbations.
    np.testing.assert_array_equal(adv[~fooled], x[~fooled])
    assert np.median(np.sqrt(np.sum((adv - x) ** 2, axis=(1, 2, 3)))[fooled]) < 3.0


def test_pgd_deterministic_for_a_seed(toy):
    model, x, y = toy
    a = attacks.pgd(model, x, y, eps=0.1, nb_iter=3, seed=3)
    b = attacks.pgd(model, x, y, eps=0.1, nb_iter=3, seed=3)
    np.testing.assert_array_equal(a, b)


def test_bad_arguments(toy):
    model, x, y = toy
    with pytest.raises(ValueError, match="eps"):
        attacks.fgsm(model, x, y, eps=-1)
    with pytest.raises(ValueError, match="examples"):
        attacks.pgd(model, x, y[:3], eps=0.1)
    with pytest.raises(ValueError, match="batch"):
        attacks.fgsm(model, x[0], None, eps=0.1)


@pytest.mark.parametrize("name", ["bim", "mim"])
def test_iterative_attacks_respect_eps(toy, name):
    model, x, y = toy
    adv = attacks.ATTACKS[name](model, x, y, eps=0.1)
    assert np.max(np.abs(adv - x)) <= 0.1 + 1e-6
    assert np.mean(np.argmax(np.asarray(model(adv)), 1) != y) > 0.8


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_fools_linear_model_with_small_steps(toy, norm):
    model, x, y = toy
    adv = attacks.deepfool(model, x, y, norm=norm, max_iter=20)
    assert np.mean(np.argmax(np.asarray(model(adv)), 1) != y) > 0.9
    bounded = attacks.deepfool(model, x, y, norm=norm, eps=0.01, max_iter=20)
    delta = (bounded - x).reshape(len(x), -1)
    size = np.linalg.norm(delta, axis=1) if norm == "l2" else np.abs(delta).max(1)
    assert np.all(size <= 0.01 + 1e-5)


def test_spsa_is_gradient_free_and_bounded(toy):
    model, x, y = toy
    adv = attacks.spsa(model, x[:2], y[:2], eps=0.1, nb_iter=3, spsa_samples=16)
    assert np.max(np.abs(adv - x[:2])) <= 0.1 + 1e-6


def test_detector_aware_pgd_keeps_score_under_threshold(toy):
    import tensorflow as tf

    model, x, y = toy
    score = lambda xb: tf.reduce_mean(tf.abs(xb - 0.5), axis=[1, 2, 3])  # noqa: E731  toy "detector"
    threshold = float(np.max(score(tf.constant(x)))) + 0.01
    adv = attacks.pgd_detector_aware(model, score, threshold, x, y, eps=0.1, nb_iter=20, penalty=100.0)
    plain = attacks.pgd(model, x, y, eps=0.1, nb_iter=20)
    assert np.mean(score(tf.constant(adv)).numpy() > threshold) < np.mean(score(tf.constant(plain)).numpy() > threshold) + 1e-9
    assert np.max(np.abs(adv - x)) <= 0.1 + 1e-6


def test_half_mask_blocks_exactly_half():
    x = np.ones((2, 28, 28, 1), np.float32)
    out = attacks.half_mask(None, x, side="bottom")
    assert out[:, :14].min() == 1 and out[:, 14:].max() == 0 and out.mean() == 0.5
    assert attacks.half_mask(None, x, side="left")[:, :, :14].max() == 0
    with pytest.raises(ValueError, match="side"):
        attacks.half_mask(None, x, side="middle")


def test_gaussian_noise_is_seeded_clipped_and_has_its_variance():
    x = np.full((64, 28, 28, 1), 0.5, np.float32)
    a = attacks.gaussian_noise(None, x, variance=0.05, seed=1)
    assert np.array_equal(a, attacks.gaussian_noise(None, x, variance=0.05, seed=1))
    assert not np.array_equal(a, attacks.gaussian_noise(None, x, variance=0.05, seed=2))
    assert a.min() >= 0 and a.max() <= 1
    # At 0.5 the clipping (at 2.2 standard deviations) barely changes the variance.
    assert abs(np.var(a - x) - 0.05) < 0.005
    with pytest.raises(ValueError, match="variance"):
        attacks.gaussian_noise(None, x, variance=-1.0)


def test_pgd_restarts_keep_the_worst_case(toy):
    model, x, y = toy
    wrong = lambda adv: np.argmax(np.asarray(model(adv)), 1) != y  # noqa: E731
    one = attacks.pgd(model, x, y, eps=0.01, eps_iter=0.002, nb_iter=2, seed=3)
    three = attacks.pgd(model, x, y, eps=0.01, eps_iter=0.002, nb_iter=2, restarts=3, seed=3)
    np.testing.assert_array_equal(wrong(one) & ~wrong(three), np.zeros(len(x), bool))  # restart 1 is seed 3 too
    assert np.max(np.abs(three - x)) <= 0.01 + 1e-6
    with pytest.raises(ValueError, match="restarts"):
        attacks.pgd(model, x, y, eps=0.1, restarts=2, rand_init=False)


def test_cw_linf_finds_small_linf_examples_and_keeps_the_unfooled(toy):
    model, x, y = toy
    adv = attacks.cw_linf(model, x, y, max_iter=20, rounds=8)
    fooled = np.argmax(np.asarray(model(adv)), 1) != y
    linf = np.abs(adv - x).reshape(len(x), -1).max(1)
    assert fooled.mean() > 0.8 and adv.min() >= 0 and adv.max() <= 1
    # Tightening tau drives the distortion well below the first round's bound of 1.
    assert np.median(linf[fooled]) < 0.2
    np.testing.assert_array_equal(adv[~fooled], x[~fooled])
    # An impossible confidence fools nothing: every image comes back unchanged.
    np.testing.assert_array_equal(attacks.cw_linf(model, x[:2], y[:2], confidence=1e6, max_iter=2, rounds=2,
                                                  largest_const=0.2), x[:2])


def test_every_attack_is_one_record_that_states_what_it_needs():
    for name, record in attacks.ATTACKS.items():
        params = record.params(0.3)
        assert ("eps" in params) == record.uses_eps, name
        assert params.get("n") == record.max_n, name
        assert record.access in attacks.ACCESS, name
    assert attacks.ATTACKS["spsa"].access == "queries" and attacks.ATTACKS["half_mask"].access == "none"
    assert attacks.get("cw").params(0.3, {"confidence": 1.0})["confidence"] == 1.0
    with pytest.raises(ValueError, match="Unknown attack 'pgd2'.*choose from"):
        attacks.get("pgd2")
