"""FM-Defense on tiny shapes: losses, the two training stages, the morph detector and its three zones."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdefense import testing
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.families.fmdefense import build_defended, builders, losses
from tfdefense.families.fmdefense.detector import MorphResistanceDetector, distances, resistance_thresholds_at
from tfdefense.families.fmdefense.model import FMDefense

TINY = {"latent_dim": 3, "code_dim": 2, "filters": 2, "hidden": 8, "disc_units": 8, "disc_depth": 1}


def _constant_classifier(label):
    """A classifier whose logits favour ``label`` whatever the image (but depend on it, for gradients)."""
    bias = np.zeros(10, np.float32)
    bias[label] = 5.0
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(10, kernel_initializer="zeros",
                                                bias_initializer=keras.initializers.Constant(bias))])


def test_mixture_prior_is_the_class_gaussians():
    prior = builders.GaussianMixturePrior(classes=3, dim=2)
    z = tf.constant([[0.5, -1.0]])
    means, scales = prior.means.numpy(), tf.nn.softplus(prior.raw_scales).numpy() + prior.min_scale
    expected = [np.sum(-0.5 * ((z.numpy()[0] - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi))
                for m, s in zip(means, scales)]
    np.testing.assert_allclose(prior(z).numpy()[0], expected, rtol=1e-5)
    marginal = prior.mixture().log_prob(z).numpy()[0]
    np.testing.assert_allclose(marginal, np.log(np.mean(np.exp(expected))), rtol=1e-5)


def test_permute_dims_shuffles_each_code_on_its_own():
    z = tf.reshape(tf.range(12, dtype=tf.float32), [4, 3])
    permuted = losses.permute_dims(z, tf.random.stateless_uniform([4, 3], [1, 2])).numpy()
    for j in range(3):
        assert sorted(permuted[:, j]) == sorted(z.numpy()[:, j])
    assert not np.array_equal(permuted, z.numpy())


def test_mixture_losses():
    log_lik = tf.constant([[0.0, -10.0], [-10.0, 0.0]])
    assert float(losses.mixture_classification(tf.constant([0, 1]), log_lik)) < 1e-3
    assert float(losses.mixture_classification(tf.constant([1, 0]), log_lik)) > 9
    assert float(losses.mixture_likelihood(tf.constant([0, 1]), log_lik)) == 0.0


def test_training_runs_the_dgmm_first_then_freezes_it():
    keras.utils.set_random_seed(0)
    model = FMDefense.from_config_dict({**TINY, "dgmm_steps": 2})
    model.compile(keras.optimizers.Adam(1e-2))
    x, y = testing.blob_images(16)
    dgmm0 = [w.copy() for w in model.dgmm.get_weights()]
    enhanced0 = [w.copy() for w in model.enhanced_decoder.get_weights()]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 2 steps: the first stage only
    assert any(not np.array_equal(a, b) for a, b in zip(dgmm0, model.dgmm.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(enhanced0, model.enhanced_decoder.get_weights()))
    dgmm1 = [w.copy() for w in model.dgmm.get_weights()]
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # second stage: the DGMM is frozen
    assert all(np.array_equal(a, b) for a, b in zip(dgmm1, model.dgmm.get_weights()))
    assert any(not np.array_equal(a, b) for a, b in zip(enhanced0, model.enhanced_decoder.get_weights()))
    assert all(np.isfinite(v[-1]) for v in history.history.values())


def _detector(label=3, **kwargs):
    keras.utils.set_random_seed(0)
    networks = FMDefense.from_config_dict(TINY)
    defended = build_defended(networks, _constant_classifier(label), low=[-1.0] * 3, high=[1.0] * 3, **kwargs)
    return defended, defended.detectors[0]


def test_morphs_move_one_selected_code_within_its_range():
    _, detector = _detector(codes=[0, 2], morphs=5)
    z = tf.constant([[0.2, 0.7, -5.0]])
    codes = detector.morph_codes(z, seed=1, morphs=5).numpy()  # [1, 2 codes, 5 morphs, 3]
    assert codes.shape == (1, 2, 5, 3)
    np.testing.assert_array_equal(codes[0, 0, :, 1:], np.tile(np.float32([[0.7, -5.0]]), (5, 1)))
    np.testing.assert_array_equal(codes[0, 1, :, :2], np.tile(np.float32([[0.2, 0.7]]), (5, 1)))
    assert np.all(np.abs(codes[0, 0, :, 0] - 0.2) <= 0.1 * 2.0 + 1e-6)  # first round: within dr of the code
    assert np.all(codes[0, 1, :, 2] == -1.0)  # a code far off its range is clipped onto it
    np.testing.assert_array_equal(codes, detector.morph_codes(z, seed=1, morphs=5).numpy())
    assert not np.array_equal(codes, detector.morph_codes(z, seed=2, morphs=5).numpy())


def test_a_label_every_morph_keeps_is_fully_resistant():
    _, detector = _detector(morphs=4)
    x, _ = testing.blob_images(3)
    np.testing.assert_array_equal(detector.resistance(x).numpy(), np.ones((3, 3)))


def test_morphs_are_decoded_in_the_fewest_even_chunks_with_the_same_resistance():
    """A single image's 3 x 40 morphs are one chunk of 120 rows (they were padded to a full chunk of 4096);
    any split gives the same resistance."""
    keras.utils.set_random_seed(0)
    networks = FMDefense.from_config_dict(TINY)
    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    x, _ = testing.blob_images(2)
    defended = build_defended(networks, classifier, low=[-1.0] * 3, high=[1.0] * 3, morphs=40)
    detector = defended.detectors[0]
    decode, rows, resistances = detector.decoder, [], []
    detector.decoder = lambda z, training=False: rows[-1].append(int(z.shape[0])) or decode(z, training=training)
    for chunk in (4096, 50, 1):
        detector.chunk = chunk
        rows.append([])
        resistances.append(detector.resistance(x[:1]).numpy())  # eager: one decoder call per chunk
    assert rows == [[120], [40, 40, 40], [1] * 120]
    assert 0 < resistances[0].min() or resistances[0].max() < 1  # the classifier does depend on the morphs
    np.testing.assert_array_equal(resistances[0], resistances[1])
    np.testing.assert_array_equal(resistances[0], resistances[2])


def test_thresholds_and_distance():
    r = np.array([[1.0, 1.0], [0.5, 1.0], [1.0, 0.2], [0.9, 1.0]])
    assert resistance_thresholds_at(r, rho=0.75) == [0.9, 1.0]
    np.testing.assert_allclose(distances(r, [0.9, 1.0]), [0.0, 0.4, 0.8, 0.0])
    with pytest.raises(ValueError, match="resistances"):
        resistance_thresholds_at(np.ones(3))


def test_three_zones_trusted_purified_rejected():
    """Distance 0: classified as is; in (0, theta_d]: purified; beyond theta_d: rejected."""
    defended, detector = _detector(resistance_thresholds=1.0, threshold=0.5)
    x, _ = testing.blob_images(3)
    scores = tf.constant([0.0, 0.3, 2.0])
    np.testing.assert_array_equal(detector.flag(scores), [False, True, True])
    np.testing.assert_array_equal(detector.reject(scores), [False, False, True])
    out = defended.defend(x)  # the constant classifier keeps its label under every morph: all trusted
    assert not out["is_adversarial"].any() and not out["rejected"].any()
    np.testing.assert_array_equal(out["purified"], x)
    defended.set_thresholds({"morph": None})  # detector off: everything purified, nothing flagged
    out = defended.defend(x)
    assert not out["is_adversarial"].any()
    np.testing.assert_allclose(out["purified"], defended.purifier(x)["images"], atol=1e-6)


def test_detector_aware_stand_in_has_a_gradient():
    defended, detector = _detector(resistance_thresholds=1.0, threshold=0.5)
    assert detector.attackable and not detector.differentiable and detector.random
    assert defended.attackable_detectors() == [detector]
    x = tf.constant(testing.blob_images(2)[0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        excess = defended.detector_excess(x)
    assert excess.shape == (2,) and np.all(np.isfinite(tape.gradient(excess, x).numpy()))


def test_bad_settings_say_what_was_wrong():
    networks = FMDefense.from_config_dict(TINY)
    with pytest.raises(ValueError, match="codes"):
        MorphResistanceDetector(networks.encoder, networks.decoder, [-1] * 3, [1] * 3, codes=[5])
    with pytest.raises(ValueError, match="low < high"):
        MorphResistanceDetector(networks.encoder, networks.decoder, [1] * 3, [-1] * 3)
    with pytest.raises(ValueError, match="one value per selected code"):
        MorphResistanceDetector(networks.encoder, networks.decoder, [-1] * 3, [1] * 3, [0.9, 0.9])
    with pytest.raises(ValueError, match="morphs"):
        MorphResistanceDetector(networks.encoder, networks.decoder, [-1] * 3, [1] * 3, morphs=0)
    detector = MorphResistanceDetector(networks.encoder, networks.decoder, [-1] * 3, [1] * 3)
    with pytest.raises(ValueError, match="DefendedClassifier"):
        detector.resistance(testing.blob_images(1)[0])


def test_serialization_round_trip(tmp_path):
    defended, _ = _detector(morphs=3, resistance_thresholds=0.5, threshold=0.2)
    clone = DefendedClassifier.from_config(defended.get_config())
    clone.set_weights(defended.get_weights())
    x, _ = testing.blob_images(2)
    np.testing.assert_allclose(clone.defend(x)["score"], defended.defend(x)["score"])
    assert clone.detectors[0].resistance_thresholds == [0.5, 0.5, 0.5]


def test_detector_aware_attack_aims_at_the_path_quiet_inputs_take():
    from tfdefense import evaluation

    defended, _ = _detector(resistance_thresholds=1.0, threshold=0.5)
    x, _ = testing.blob_images(2)
    logits = evaluation.attack_fn(defended, "white", "pgd_detector")(tf.constant(x))
    np.testing.assert_allclose(logits, defended.classifier(x, training=False), atol=1e-6)


def test_tune_selects_active_codes_and_sets_the_levels():
    from tfdefense.families.fmdefense import tune

    keras.utils.set_random_seed(0)
    networks = FMDefense.from_config_dict(TINY)
    classifier = _constant_classifier(3)

    def build(**settings):
        return build_defended(networks, classifier, **{"morphs": 3, "search_steps": 2, **settings})

    x, y = testing.blob_images(8)
    settings, table = tune(build, x, y, min_width=0.0, resistance_threshold=0.6)
    assert settings["codes"] == [0, 1, 2] and settings["resistance_thresholds"] == [0.6] * 3
    assert settings["thresholds"] == {"morph": 0.0} and table["clean_flagged"] == 0.0  # every morph keeps label 3
    assert table["rho_thresholds"] == [1.0] * 3 and table["rule"] == "unified"
    settings, table = tune(build, x, y, min_width=1e9, resistance_threshold=None)
    assert len(settings["codes"]) == 1 and settings["resistance_thresholds"] == [1.0]
    assert all(lo < hi for lo, hi in zip(settings["low"], settings["high"]))
    assert settings["morphs"] == 1 and table["morph_counts"]["3"]["fgsm_flagged"] == 0.0  # all equal: the fewest


def test_choose_morphs_keeps_the_count_that_detects_like_the_largest():
    from tfdefense.families.fmdefense import choose_morphs

    networks = FMDefense.from_config_dict(TINY)
    model = build_defended(networks, _constant_classifier(3), morphs=3, search_steps=2)
    x, y = testing.blob_images(4)
    # resistances of 4 images on one code, by morph count: (clean, adversarial)
    fake = {100: ([1, 1, 1, 0], [0, 0, 0, 0]), 50: ([1, 1, 1, 0], [0, 0, 0, 1]), 10: ([1, 1, 1, 0], [0, 1, 1, 1])}

    def resistances(images, morphs):
        return np.array(fake[morphs][0 if images is x else 1], np.float32)[:, None]

    morphs, table = choose_morphs(model, x, y, resistances, lambda r: [0.5], eps=0.3, seed=0,
                                  morph_counts=(10, 50, 100), tolerance=0.25)
    assert morphs == 50 and list(table) == ["10", "50", "100"]  # 10 flags 0.25 of FGSM against 1.0: too few
    assert table["100"]["fgsm_flagged"] == 1.0 and table["10"]["fgsm_flagged"] == 0.25
    assert table["50"]["clean_flagged"] == 0.25
    fake[50] = ([0, 0, 1, 0], [0, 0, 0, 0])  # as many FGSM flagged, but 0.75 of clean images: false alarms
    assert choose_morphs(model, x, y, resistances, lambda r: [0.5], eps=0.3, seed=0,
                         morph_counts=(10, 50, 100), tolerance=0.25)[0] == 100
