import numpy as np
import pytest

from tfdefense import testing
from tfdefense.families.classifiers import builders


@pytest.mark.parametrize("arch,params", [("a", 924746), ("b", 710218), ("c", 199210)])
def test_paper_parameter_counts(arch, params):
    assert builders.build_classifier(arch).count_params() == params


@pytest.mark.parametrize("arch,kwargs", [("a", {"filters": 2, "units": 4}), ("b", {"filters": 2}),
                                         ("c", {"units": 4})])
def test_tiny_classifiers_output_logits(arch, kwargs):
    model = builders.build_classifier(arch, **kwargs)
    out = np.asarray(model(testing.tiny_images(2), training=False))
    assert out.shape == (2, 10)
    assert not np.allclose(out.sum(-1), 1.0)  # logits, not probabilities


def test_unknown_arch():
    with pytest.raises(ValueError, match="Unknown classifier"):
        builders.build_classifier("d")
