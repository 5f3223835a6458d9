import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdefense import testing
from tfdefense.evaluation import threats
from tfdefense.families.classifiers import builders as cbuilders
from tfdefense.families.puvae import PuVAE, build_defended, builders, losses
from tfdefense.families.puvae.purifier import ClassConditionalPurifier


def _nets(seed=0):
    keras.utils.set_random_seed(seed)
    return builders.trunk(2, 8), builders.head(4, 8), builders.decoder(4, 2)


def test_table6_widths_and_the_split_first_dense_layer():
    trunk, head = builders.trunk(), builders.head(32)
    # FC(1024) on [25088 conv features, 10-way label] = 25098 x 1024 weights + 1024 biases, split in two.
    fc1 = trunk.get_layer("trunk_fc1_image").count_params() + head.get_layer("head_fc1_label").count_params()
    assert fc1 == 25098 * 1024 + 1024
    assert builders.decoder(32).output_shape == (None, 28, 28, 1)
    with pytest.raises(ValueError, match="output"):
        builders.decoder(4, 2, output="tanh")


def test_purifier_keeps_the_reconstruction_nearest_the_input():
    purifier = ClassConditionalPurifier(*_nets())
    x = testing.tiny_images(3, seed=1)
    images, rmse = purifier.reconstructions(x, seed=5)
    out = purifier(x, seed=5)
    best = np.argmin(np.asarray(rmse), axis=1)
    np.testing.assert_array_equal(out["class"], best)
    np.testing.assert_allclose(out["images"], np.asarray(images)[np.arange(3), best], atol=1e-6)
    np.testing.assert_allclose(out["errors"], np.asarray(losses.rmse_per_image(x, out["images"])), atol=1e-6)
    assert images.shape == (3, 10, 28, 28, 1)


def test_sampling_is_seeded_and_scale_zero_is_deterministic():
    nets = _nets()
    x = testing.tiny_images(2, seed=2)
    random = ClassConditionalPurifier(*nets)
    assert random.random and random.eot_samples > 1
    np.testing.assert_array_equal(random(x, seed=1)["images"], random(x, seed=1)["images"])
    assert not np.array_equal(random(x, seed=1)["images"], random(x, seed=2)["images"])
    fixed = ClassConditionalPurifier(*nets, sampling_scale=0.0)
    assert not fixed.random
    np.testing.assert_array_equal(fixed(x, seed=1)["images"], fixed(x, seed=2)["images"])
    with pytest.raises(ValueError, match="sampling_scale"):
        ClassConditionalPurifier(*nets, sampling_scale=-1.0)


def test_detector_is_differentiable_through_the_purifier():
    model = build_defended(*_nets(), cbuilders.classifier_c(units=8), threshold=0.0)
    assert threats.gradient_kind(model) == "exact" and model.attackable_detectors()
    x = tf.constant(testing.tiny_images(2, seed=3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        excess = tf.reduce_sum(model.detector_excess(x))
    assert float(excess) > 0 and float(tf.reduce_sum(tf.abs(tape.gradient(excess, x)))) > 0
    out = model.defend(testing.tiny_images(2, seed=3))
    assert out["rejected"].all()  # threshold 0: every input is too far from its best reconstruction


def test_training_lowers_the_loss_and_leaves_the_classifier_alone():
    classifier = cbuilders.classifier_c(units=8)
    before = [w.copy() for w in classifier.get_weights()]
    model = PuVAE(*_nets(), classifier, kl_weight=1e-3, ce_weight=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x, y = testing.blob_images(16)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    history = model.fit(data, epochs=3, steps_per_epoch=10, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    for a, b in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_soft_surrogate_tends_to_the_argmin_and_lets_every_class_pull():
    nets = _nets()
    x = tf.constant(testing.tiny_images(2, seed=4))
    mean = ClassConditionalPurifier(*nets, sampling_scale=0.0)
    images, rmse = mean.reconstructions(x, sample=False)
    sharp = ClassConditionalPurifier(*nets, soft_temperature=1e-6).surrogate(x)
    np.testing.assert_allclose(sharp, mean(x)["images"], atol=1e-5)  # temperature -> 0: the argmin
    soft = ClassConditionalPurifier(*nets, soft_temperature=1.0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = soft.surrogate(x)
        total = tf.reduce_sum(out)
    weights = np.exp(-np.asarray(rmse)) / np.exp(-np.asarray(rmse)).sum(1, keepdims=True)
    np.testing.assert_allclose(out, np.einsum("nc,nchwk->nhwk", weights, np.asarray(images)), atol=1e-5)
    assert float(tf.reduce_sum(tf.abs(tape.gradient(total, x)))) > 0
    model = build_defended(*nets, cbuilders.classifier_c(units=8), soft_temperature=0.05)
    assert threats.gradient_kind(model) == "exact"  # the default: the true gradient
    assert threats.gradient_kind(model, "surrogate") == "bpda:soft-min-rmse"  # when asked for
    with pytest.raises(ValueError, match="soft_temperature"):
        ClassConditionalPurifier(*nets, soft_temperature=0.0)


def test_decompose_separates_the_class_choice_from_the_reconstruction():
    from tfdefense.families.puvae.analysis import decompose

    purifier = ClassConditionalPurifier(*_nets(), sampling_scale=0.0)  # batches of another size draw other noise
    x, _ = testing.blob_images(6, seed=0)
    images, rmse = (np.asarray(t) for t in purifier.reconstructions(x, 0))
    y = rmse.argmin(1)  # labels that the class choice gets right by construction
    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    row = decompose(purifier, classifier, x, y, batch_size=4)
    assert row["choice_is_true_class"] == 1.0 and row["purified"] == row["oracle"]
    assert abs(row["rmse_true"] - row["rmse_chosen"]) < 1e-6
    wrong = decompose(purifier, classifier, x, (y + 1) % 10)
    assert wrong["choice_is_true_class"] == 0.0 and wrong["rmse_true"] > wrong["rmse_chosen"]
