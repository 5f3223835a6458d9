import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdefense import testing
from tfdefense.defense import networks
from tfdefense.evaluation import art_attacks, attacks, threats
from tfdefense.families.aegan.defended import build_defended
from tfdefense.families.classifiers import builders as cbuilders

pytest.importorskip("art")


@pytest.fixture(scope="module")
def toy():
    keras.utils.set_random_seed(0)
    x, y = testing.blob_images(16, seed=3)
    model = cbuilders.classifier_c(units=16)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=30, verbose=0)
    return model, x, y


def test_art_pgd_through_the_adapter_agrees_with_ours(toy):
    from art.attacks.evasion import ProjectedGradientDescent

    model, x, y = toy
    ours = attacks.pgd(model, x, y, eps=0.1, eps_iter=0.01, nb_iter=20, rand_init=False)
    pgd = ProjectedGradientDescent(art_attacks.estimator(lambda b: model(b, training=False), (28, 28, 1)), eps=0.1,
                                   eps_step=0.01, max_iter=20, num_random_init=0, verbose=False)
    theirs = pgd.generate(x, y=np.eye(10, dtype=np.float32)[y])
    assert np.max(np.abs(theirs - x)) <= 0.1 + 1e-6
    # Same sign steps from the same start: the same images up to float rounding at the projection.
    assert np.mean(np.isclose(ours, theirs, atol=1e-5)) > 0.99


def test_adapter_gradient_is_the_bpda_gradient_for_aegan(toy):
    _, x, y = toy
    classifier = cbuilders.classifier_c(units=16)  # untrained: a confident toy model's gradient underflows to 0
    defense = build_defended(networks.encoder(4, 2), networks.decoder(4, 2), classifier, steps=3, threshold=None)
    clf = art_attacks.as_estimator(defense, "white")
    grad = clf.loss_gradient(x, np.eye(10, dtype=np.float32)[y])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
            y, threats.white_box_fn(defense)(xt), from_logits=True))
    expected = tape.gradient(loss, xt).numpy()
    assert np.abs(grad).sum() > 0
    # ART averages its loss over the batch; the BPDA gradient is summed here.
    np.testing.assert_allclose(grad * len(x), expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", [("autoattack", {"eps": 0.2, "max_iter": 10, "square_queries": 20}), ("square", {"eps": 0.2, "max_iter": 20}),
                                         ("jsma", {})])
def test_art_attacks_fool_a_toy_model_within_their_budget(toy, name, kwargs):
    model, x, y = toy
    fn = lambda b: model(b, training=False)  # noqa: E731
    x_adv = getattr(art_attacks, name)(fn, x[:8], y[:8], **kwargs)
    assert x_adv.shape == x[:8].shape and x_adv.min() >= 0 and x_adv.max() <= 1
    if "eps" in kwargs:
        assert np.max(np.abs(x_adv - x[:8])) <= kwargs["eps"] + 1e-5
    fooled = np.mean(np.argmax(np.asarray(fn(x_adv)), 1) != y[:8])
    assert fooled > 0, f"{name} fooled no image of a toy model"


def test_zoo_purifier_as_art_preprocessor_forward_is_real_and_gradient_is_declared(tiny_data_dir):
    """An ART user's own estimator with a zoo purifier in front: predictions are those of the defense,
    and the loss gradient is the BPDA one the threat model declares (G(F(x)) for a latent search)."""
    from art.estimators.classification import TensorFlowV2Classifier

    from tfdefense.defense.networks import classifier_c, decoder, encoder

    keras.utils.set_random_seed(0)
    defense = build_defended(encoder(4, 2), decoder(4, 2), classifier_c(units=8), steps=2, threshold=None)
    x, y = testing.blob_images(4, seed=3)
    clf = TensorFlowV2Classifier(defense.classifier, nb_classes=10, input_shape=(28, 28, 1), clip_values=(0, 1),
                                 loss_object=tf.keras.losses.CategoricalCrossentropy(from_logits=True),
                                 preprocessing_defences=[art_attacks.as_preprocessor(defense)])
    np.testing.assert_allclose(clf.predict(x), defense.defend(x)["logits"], atol=1e-5)
    grad = clf.loss_gradient(x, np.eye(10)[y])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(  # ART's loss: a batch mean
            y, threats.white_box_fn(defense)(xt), from_logits=True))
    expected = tape.gradient(loss, xt).numpy()
    assert np.abs(grad).sum() > 0
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-6)
