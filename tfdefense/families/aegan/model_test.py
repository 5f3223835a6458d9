import numpy as np
import pytest

from tfdefense import testing
from tfdefense.families.aegan import builders, losses
from tfdefense.families.aegan.model import AEGAN

TINY = {"latent_dim": 4, "filters": 2}


@pytest.mark.parametrize("builder,params", [(builders.encoder, 1552000), (builders.decoder, 1554945),
                                            (builders.discriminator, 1031681)])
def test_table6_parameter_counts(builder, params):
    assert builder().count_params() == params


def test_shapes_and_ranges():
    model = AEGAN.from_config_dict(TINY)
    x = testing.tiny_images(2)
    z = np.asarray(model.encoder(x, training=False))
    assert z.shape == (2, 4) and np.all(np.abs(z) <= 1)
    out = np.asarray(model(x))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("settings", [{}, {"adversarial": False}, {"noise_eta": 0.0}, {"noise": "sign"}])
def test_train_step_eager_and_compiled(settings):
    model = AEGAN.from_config_dict({**TINY, **settings})
    model.compile()
    histories = testing.run_train_step_test(model, testing.tiny_images(4), steps=2)
    keys = set(histories[0])
    assert "recon_loss" in keys
    assert ("d_loss" in keys) == settings.get("adversarial", True)


def test_sign_noise_is_plus_or_minus_sigma():
    model = AEGAN.from_config_dict({**TINY, "noise": "sign", "noise_eta": 0.3})
    x = np.full((64, 28, 28, 1), 0.5, "float32")  # mid-grey: no clipping
    noise = np.asarray(model._noisy(x)) - 0.5
    sigma = np.abs(noise).reshape(64, -1)
    assert np.allclose(sigma, sigma[:, :1], atol=1e-6)  # one scale per image
    assert 0.0 <= sigma.min() and sigma.max() <= 0.3
    positive = (noise > 0).mean()
    assert 0.4 < positive < 0.6
    with pytest.raises(ValueError, match="noise must be one of"):
        AEGAN.from_config_dict({**TINY, "noise": "uniform"})


def test_plain_ae_has_no_discriminator():
    model = AEGAN.from_config_dict({**TINY, "adversarial": False})
    assert model.discriminator is None


def test_training_reduces_reconstruction():
    import keras

    keras.utils.set_random_seed(0)
    x, _ = testing.blob_images(8)
    model = AEGAN.from_config_dict({**TINY, "adversarial": False, "noise_eta": 0.0})
    model.compile(g_optimizer=keras.optimizers.Adam(1e-2), e_optimizer=keras.optimizers.Adam(1e-2))
    # Batch statistics on both sides: moving averages barely move in a few steps.
    before = float(losses.reconstruction_loss(x, model(x, training=True)))
    model.fit(x, epochs=40, batch_size=8, verbose=0)
    assert float(losses.reconstruction_loss(x, model(x, training=True))) < 0.5 * before


def test_serialization(tmp_path):
    model = AEGAN.from_config_dict(TINY)
    testing.run_serialization_test(model, tmp_path, testing.tiny_images(2))


def test_losses_basic_values():
    zeros = np.zeros((3, 1), "float32")
    assert float(losses.discriminator_loss(zeros, zeros)) == pytest.approx(2 * np.log(2), rel=1e-5)
    assert float(losses.generator_loss(zeros)) == pytest.approx(np.log(2), rel=1e-5)
    x = np.zeros((2, 28, 28, 1), "float32")
    assert float(losses.reconstruction_loss(x, x + 0.1)) == pytest.approx(784 * 0.01, rel=1e-4)


def test_recalibration_changes_only_decoder_statistics():
    import keras

    model = AEGAN.from_config_dict(TINY)
    x = testing.tiny_images(8)
    trainable = [v.numpy().copy() for v in model.trainable_variables]
    norms = [layer for layer in model.decoder.layers if isinstance(layer, keras.layers.BatchNormalization)]
    before = [layer.moving_mean.numpy().copy() for layer in norms]
    model.recalibrate_decoder_statistics(x, batch_size=4)
    assert any(not np.allclose(b, layer.moving_mean.numpy()) for b, layer in zip(before, norms))
    for a, v in zip(trainable, model.trainable_variables):
        np.testing.assert_array_equal(a, v.numpy())
    assert all(layer.momentum == 0.99 for layer in norms)


def test_decompose_measures_each_stage_on_the_same_images():
    import keras

    from tfdefense.families.aegan import analysis, builders, defended

    keras.utils.set_random_seed(0)
    encoder, decoder = builders.encoder(4, 2), builders.decoder(4, 2)
    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model = defended.build_defended(encoder, decoder, classifier, steps=2, threshold=0.0)  # flags everything
    x, _ = testing.blob_images(6, seed=0)
    gfx = np.asarray(model.purifier.surrogate(x))
    y = np.asarray(classifier(gfx)).argmax(-1)  # labels that A gets right on G(F(x)) by construction
    searches = {"tiny": defended.build_defended(encoder, decoder, classifier, steps=2, step_size=0.5).purifier}
    row = analysis.decompose(model, classifier, x, y, searches=searches, readers=[classifier], clean=x)
    assert row["gfx"] == 1.0 and row["flagged"] == 1.0 and row["n"] == 6
    assert row["gfx_wrong_every_reader_right"] == row["gfx_wrong_no_reader_right"] == 0.0
    assert row["gfx_l2_to_clean_reconstruction"] == 0.0 and set(row["search"]) == {"tiny"}
    table = analysis.markdown_table({"rows": [{"input": "clean", **row}]}).splitlines()
    assert len(table) == 3 and "search, tiny" in table[0] and table[2].startswith("| clean | ")
    wrong = analysis.decompose(model, classifier, x, (y + 1) % 10, readers=[classifier])
    assert wrong["gfx"] == 0.0 and wrong["gfx_wrong_no_reader_right"] == 1.0  # the reader agrees with A
