"""Each shipped classifier loads (sha256 checked) and is accurate on the dev split."""

import pytest

import tfdefense
from tfdefense import datasets, evaluation
from tfdefense.zoo import registry

MIN_DEV_ACCURACY = {"a_mnist": 0.985, "b_mnist": 0.98, "c_mnist": 0.97,
                    "a_fmnist": 0.90, "b_fmnist": 0.88, "c_fmnist": 0.85}

pytestmark = pytest.mark.pretrained  # needs the published weights (through tfdefense.store)


@pytest.mark.parametrize("suffix", sorted(MIN_DEV_ACCURACY))
def test_pretrained_classifier_dev_accuracy(real_data_dir, suffix):
    name = f"classifier_{suffix}"
    model = tfdefense.load(name)
    x, y = datasets.load(registry.get_entry(name)["metadata"]["dataset"], "dev")
    assert evaluation.accuracy(model, x, y) >= MIN_DEV_ACCURACY[suffix]
