import numpy as np
import tensorflow as tf

from tfdefense import testing
from tfdefense.families.advtrain import AdversarialTraining, linf_attack
from tfdefense.defense.networks import classifier_c


def test_attack_stays_in_the_ball_and_raises_the_loss():
    model = classifier_c(units=8)
    x, y = testing.blob_images(8)
    x_adv = np.asarray(linf_attack(model, x, y, eps=0.2, step_size=0.05, steps=5, seed=tf.constant([1, 2])))
    assert np.max(np.abs(x_adv - x)) <= 0.2 + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
    ce = lambda b: float(tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(  # noqa: E731
        y, model(b, training=False), from_logits=True)))
    assert ce(x_adv) > ce(x)


def test_train_step_eager_and_compiled():
    import keras

    model = AdversarialTraining(classifier_c(units=8), eps=0.3, step_size=0.1, steps=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    histories = testing.run_train_step_test(model, testing.blob_images(8))
    assert {"adv_loss", "adv_accuracy"} <= set(histories[1])


def test_budget_warms_up_linearly_then_stays():
    import keras

    model = AdversarialTraining(classifier_c(units=8), eps=0.3, steps=1, step_size=0.375, eps_warmup_steps=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    fractions = []
    for _ in range(6):
        fractions.append(round(float(model.budget_fraction()), 3))
        model.optimizer.iterations.assign_add(1)
    assert fractions == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    x, y = testing.blob_images(4)
    model.optimizer.iterations.assign(0)
    x_adv = np.asarray(model._attack(x, y, model.budget_fraction()))
    assert np.max(np.abs(x_adv - x)) <= 0.075 + 1e-6
    assert AdversarialTraining(classifier_c(units=8)).get_config()["eps_warmup_steps"] == 0
