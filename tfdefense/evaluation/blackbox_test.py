import keras
import numpy as np
import pytest

from tfdefense import testing
from tfdefense.evaluation import blackbox
from tfdefense.families.classifiers import builders


@pytest.fixture(scope="module")
def oracle():
    """A classifier trained on structured toy images: the attacker's target."""
    keras.utils.set_random_seed(0)
    x, y = testing.blob_images(400, seed=1)
    model = builders.classifier_c(units=32)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=15, batch_size=50, verbose=0)
    return model


def test_substitute_agrees_with_its_oracle_above_chance(oracle):
    label = blackbox.oracle_from(oracle)
    seed_x, _ = testing.blob_images(30, seed=2)
    sub = blackbox.train_substitute(label, seed_x, arch="c", rounds=3, epochs=10, units=32)
    assert sub.training_set_size == 30 * 4 and sub.oracle_queries == 30 * 4
    x_test, _ = testing.blob_images(200, seed=3)
    agreement = np.mean(np.argmax(np.asarray(sub.model(x_test)), 1) == label(x_test))
    assert agreement > 0.3  # three times chance (0.1)


def test_jacobian_augmentation_moves_by_lambda(oracle):
    x, y = testing.blob_images(4, seed=4)
    x_new = blackbox.jacobian_augment(oracle, x, y, 0.1)
    assert np.max(np.abs(x_new - x)) <= 0.1 + 1e-6 and not np.allclose(x_new, x)
    assert x_new.min() >= 0 and x_new.max() <= 1


def test_bad_settings(oracle):
    with pytest.raises(ValueError, match="rounds"):
        blackbox.train_substitute(blackbox.oracle_from(oracle), testing.blob_images(4)[0], rounds=0)
