import numpy as np
import pytest
import tensorflow as tf

from tfdefense.purification import search

def linear_decoder(latent=3, seed=0):
    """G(z) = sigmoid-free linear map to 28x28x1: the search is a least-squares problem."""
    rng = np.random.default_rng(seed)
    w = tf.constant(rng.normal(size=(latent, 784)).astype("float32") / 28)

    class Dec:

        def __call__(self, z, training=False):
            return tf.reshape(tf.matmul(z, w), [-1, 28, 28, 1])
    return Dec(), w

@pytest.mark.parametrize("compiled", [False, True])
def test_search_recovers_code_of_a_decoded_image(compiled):
    dec, w = linear_decoder()
    z_true = tf.constant([[0.5, -0.3, 0.2], [-0.1, 0.4, 0.0]])
    x = dec(z_true)
    z0 = tf.zeros([1, 2, 3])
    fn = tf.function(search._search) if compiled else search._search
    res = fn(dec, x, z0, 60, 0.5, 20, 0.5, 1.0)
    np.testing.assert_allclose(res.codes.numpy(), z_true.numpy(), atol=1e-2)
    assert res.errors.shape == (2,) and np.all(res.errors.numpy() < 1e-4)

def test_zero_steps_returns_the_start_and_best_restart_is_kept():
    dec, _ = linear_decoder()
    z_true = tf.constant([[0.5, -0.3, 0.2]])
    x = dec(z_true)
    starts = tf.stack([tf.constant([[0.9, 0.9, 0.9]]), z_true])  # restart 1 is exact
    res = search.latent_search(dec, x, starts, steps=0, step_size=1.0)
    np.testing.assert_allclose(res.codes.numpy(), z_true.numpy())
    assert float(res.errors[0]) == pytest.approx(0.0, abs=1e-10)

def test_codes_stay_clipped():
    dec, _ = linear_decoder()
    x = dec(tf.constant([[5.0, 5.0, 5.0]]))  # outside the code box
    res = search.latent_search(dec, x, tf.zeros([1, 1, 3]), steps=30, step_size=1.0)
    assert np.all(np.abs(res.codes.numpy()) <= 1.0)

@pytest.mark.parametrize("kwargs,match", [({"steps": -1}, "steps"), ({"step_size": 0}, "step_size"),
                                          ({"decay_every": 0}, "decay_every"), ({"decay": 2}, "decay"),
                                          ({"momentum": 1.0}, "momentum"), ({"momentum": -0.1}, "momentum")])
def test_bad_settings(kwargs, match):
    dec, _ = linear_decoder()
    args = {"steps": 1, "step_size": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        search.latent_search(dec, tf.zeros([1, 28, 28, 1]), tf.zeros([1, 1, 3]), **args)

def test_random_codes_reproducible_and_bounded():
    a = search.random_codes(4, 3, 2, seed=7)
    b = search.random_codes(4, 3, 2, seed=7)
    c = search.random_codes(4, 3, 2, seed=8)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())
    assert a.shape == (2, 4, 3) and np.all(np.abs(a.numpy()) <= 1)

def test_momentum_gets_further_than_plain_descent_at_the_same_step():
    """Heavy-ball momentum (Defense-GAN's optimiser) on an ill-conditioned least-squares problem;
    momentum=0 is exactly the plain search."""
    dec, _ = linear_decoder()
    x = dec(tf.constant([[0.5, -0.3, 0.2]]))
    start = tf.zeros([1, 1, 3])
    plain = search.latent_search(dec, x, start, steps=10, step_size=0.05, decay_every=100, decay=1.0)
    zero = search.latent_search(dec, x, start, steps=10, step_size=0.05, decay_every=100, decay=1.0, momentum=0.0)
    heavy = search.latent_search(dec, x, start, steps=10, step_size=0.05, decay_every=100, decay=1.0, momentum=0.7)
    np.testing.assert_array_equal(plain.codes.numpy(), zero.codes.numpy())
    assert float(heavy.errors[0]) < 0.5 * float(plain.errors[0])

def test_random_codes_scale():
    """Defense-GAN's code starts from N(0, 1/d): the standard deviation follows ``scale``."""
    wide = search.random_codes(256, 128, 1, seed=0, prior="normal")
    narrow = search.random_codes(256, 128, 1, seed=0, prior="normal", scale=128 ** -0.5)
    assert np.std(wide.numpy()) == pytest.approx(1.0, rel=0.05)
    assert np.std(narrow.numpy()) == pytest.approx(128 ** -0.5, rel=0.05)
    assert np.all(np.abs(search.random_codes(8, 3, 2, seed=0, scale=0.2).numpy()) <= 0.2)


@pytest.fixture
def tiny_decoder():
    import keras
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(784), keras.layers.Reshape((28, 28, 1))])


@pytest.mark.parametrize("kwargs,match", [({"momentum": 1.5}, "momentum"), ({"init_scale": -1.0}, "init_scale"),
                                          ({"step_size": 0.0}, "step_size"), ({"restarts": 0}, "restarts"),
                                          ({"restarts": 1.5}, "restarts"), ({"steps": 2.5}, "steps"),
                                          ({"prior": "cauchy"}, "prior must be one of")])
def test_purifier_checks_its_search_settings(kwargs, match, tiny_decoder):
    """`LatentSearchPurifier` runs the kernel directly, so it checks the same settings up front (e.g. a bad --set)."""
    from tfdefense.purification import LatentSearchPurifier
    with pytest.raises(ValueError, match=match):
        LatentSearchPurifier(tiny_decoder, z_clip=None, **{"steps": 2, "restarts": 2, "prior": "normal", **kwargs})


def test_purifier_takes_whole_numbers_from_a_config(tiny_decoder):
    """JSON or numpy whole numbers (10.0, np.int64(3)) are counts; only a fraction is refused."""
    from tfdefense.purification import LatentSearchPurifier
    purifier = LatentSearchPurifier(tiny_decoder, steps=4.0, restarts=np.int64(3), decay_every=2.0, z_clip=None)
    assert (purifier.steps, purifier.restarts, purifier.decay_every) == (4, 3, 2)
    assert all(type(v) is int for v in (purifier.steps, purifier.restarts, purifier.decay_every))


@pytest.mark.parametrize("value,expected", [(4.0, 4), (np.int64(4), 4), ("4", 4), ("4.0", 4),
                                            (2.5, None), (True, None), ("four", None), (-1, None)])
def test_search_counts_are_whole_numbers(value, expected):
    """`latent_search` and `LatentSearchPurifier` share one check: whole numbers are counts, anything else is refused."""
    dec, _ = linear_decoder()
    x = dec(tf.constant([[0.5, -0.3, 0.2]]))
    if expected is None:
        with pytest.raises(ValueError, match="steps must be an int >= 0"):
            search.latent_search(dec, x, tf.zeros([1, 1, 3]), steps=value, step_size=0.05)
    else:
        as_int = search.latent_search(dec, x, tf.zeros([1, 1, 3]), steps=expected, step_size=0.05)
        as_value = search.latent_search(dec, x, tf.zeros([1, 1, 3]), steps=value, step_size=0.05)
        np.testing.assert_array_equal(as_int.codes.numpy(), as_value.codes.numpy())
