import numpy as np
import pytest

from tfdefense import testing
from tfdefense.families.apegan import APEGAN, builders, losses
from tfdefense.families.classifiers import builders as cbuilders


@pytest.mark.parametrize("builder,params", [(builders.generator, 149889), (builders.discriminator, 375297)])
def test_paper_architecture_parameter_counts(builder, params):
    assert builder().count_params() == params


def test_generator_maps_images_to_images_in_unit_range():
    g = builders.generator(4)
    out = np.asarray(g(testing.tiny_images(2), training=False))
    assert out.shape == (2, 28, 28, 1) and out.min() >= 0 and out.max() <= 1


def test_fgsm_in_the_step_is_an_eps_ball_attack():
    model = APEGAN(builders.generator(2), builders.discriminator(2), cbuilders.classifier_c(units=8), eps=0.3)
    x, y = testing.blob_images(4)
    x_adv = np.asarray(model.fgsm(x, y))
    assert np.max(np.abs(x_adv - x)) <= 0.3 + 1e-6 and not np.allclose(x_adv, x)
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_train_step_eager_and_compiled_and_classifier_frozen():
    classifier = cbuilders.classifier_c(units=8)
    before = [w.copy() for w in classifier.get_weights()]
    model = APEGAN(builders.generator(2), builders.discriminator(2), classifier)
    model.compile()
    x, y = testing.blob_images(8)
    histories = testing.run_train_step_test(model, (x, y))
    assert {"d_loss", "g_loss", "mse"} <= set(histories[0])
    for a, b in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_losses_follow_the_paper():
    x = np.zeros((2, 28, 28, 1), np.float32)
    assert float(losses.pixel_mse(x, x + 0.5)) == pytest.approx(0.25)
    # D that is sure and right: both terms near zero; the APE loss weights MSE by 0.7.
    assert float(losses.discriminator_loss(np.full(2, 20.0, np.float32), np.full(2, -20.0, np.float32))) < 1e-6
    assert float(losses.ape_loss(x, x + 0.5, np.full(2, 20.0, np.float32))) == pytest.approx(0.7 * 0.25, abs=1e-6)
