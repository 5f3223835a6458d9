"""The shipped adversarially trained classifiers: load like every entry, stay accurate, and resist
FGSM far better than plain classifier A."""

import numpy as np
import pytest

import tfdefense
from tfdefense import datasets, evaluation
from tfdefense.evaluation import attacks, threats
from tfdefense.zoo import registry, store

pytestmark = pytest.mark.pretrained  # needs the published weights (through tfdefense.store)


@pytest.mark.parametrize("name", ("advtrain_a_mnist", "advtrain_a_mnist_fast", "advtrain_a_fmnist"))
def test_adversarially_trained_classifier_resists_fgsm(real_data_dir, name):
    model = tfdefense.load(name)
    card = store.card(name)
    assert model.purifier is None and not model.detectors and threats.gradient_kind(model) == "exact"
    x, y = datasets.load(card["dataset"], "dev")
    x, y = x[:300], y[:300]
    clean = evaluation.accuracy(model, x, y)
    assert clean >= (0.9 if "fmnist" not in name else 0.7)
    robust = evaluation.accuracy(model, attacks.fgsm(threats.white_box_fn(model), x, y, eps=0.3), y)
    plain = registry.load_classifier(name.replace("advtrain_", "classifier_").replace("_fast", ""))
    undefended = evaluation.accuracy(plain, attacks.fgsm(plain, x, y, eps=0.3), y)
    # Plain classifier A keeps about 0.2 (MNIST) / 0.02 (Fashion-MNIST) under FGSM eps 0.3.
    assert robust >= undefended + 0.3, (robust, undefended)
    assert np.isfinite(np.asarray(model.defend(x[:4])["logits"])).all()
