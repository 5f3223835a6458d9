import numpy as np
import pytest

from tfdefense import testing
from tfdefense.families.classifiers import builders as cbuilders
from tfdefense.families.defensegan import build_defended, losses
from tfdefense.families.defensegan.model import WGANGP

TINY = {"latent_dim": 4, "filters": 2, "critic_steps": 2}


def test_critic_has_no_batch_norm_and_generator_matches_table6():
    model = WGANGP.from_config_dict({})
    assert not any("batch_normalization" in type(l).__name__.lower() for l in model.critic.layers)
    assert model.generator.count_params() == 1554945


def test_train_step_eager_and_compiled():
    model = WGANGP.from_config_dict(TINY)
    model.compile()
    histories = testing.run_train_step_test(model, testing.tiny_images(4), steps=2)
    assert {"c_loss", "gradient_penalty", "g_loss"} <= set(histories[0])


def test_gradient_penalty_zero_for_unit_slope_critic():
    import tensorflow as tf

    w = tf.ones([28, 28, 1]) / 28.0  # ||grad|| = 1 everywhere
    critic = lambda x, training=False: tf.reduce_sum(x * w, axis=[1, 2, 3])  # noqa: E731
    real, fake = testing.tiny_images(2), testing.tiny_images(2, seed=1)
    gp = losses.gradient_penalty(critic, real, fake, tf.fill([2, 1, 1, 1], 0.5))
    assert float(gp) == pytest.approx(0.0, abs=1e-6)


def test_inc_searches_everything_and_rejects_by_error():
    model = WGANGP.from_config_dict(TINY)
    clf = cbuilders.classifier_c(units=4)
    x = testing.tiny_images(3)
    accept_all = build_defended(model.generator, clf, steps=2, restarts=2, threshold=10.0).defend(x)
    reject_all = build_defended(model.generator, clf, steps=2, restarts=2, threshold=0.0).defend(x)
    assert not accept_all["is_adversarial"].any() and reject_all["is_adversarial"].all()
    np.testing.assert_allclose(accept_all["score"], reject_all["score"], rtol=1e-5)  # score = search error


def test_serialization(tmp_path):
    model = WGANGP.from_config_dict(TINY)
    testing.run_serialization_test(model, tmp_path, np.random.default_rng(0).normal(size=(2, 4)).astype("float32"))
