import doctest

import pytest

from tfdefense.zoo import presets, registry


def test_docstring_example_runs():
    assert doctest.testmod(presets).failed == 0


def test_a_whole_placeholder_keeps_the_value_and_others_are_formatted():
    template = {"name": "x_{short}", "family": "x", "path": "{name}",
                "config": {"n": "{n}", "plan": "{plan}", "text": "{n} of {fpr:.1%}", "list": ["{short}", 3]}}
    plan = {"epochs": 2}
    entry, = presets.expand(template, [{"short": "s", "n": 7, "fpr": 0.001, "plan": plan}])
    assert entry["config"] == {"n": 7, "plan": {"epochs": 2}, "text": "7 of 0.1%", "list": ["s", 3]}
    assert entry["path"] == "x_s"
    entry["config"]["plan"]["epochs"] = 9
    assert plan == {"epochs": 2}  # entries never share a variant's dicts


def test_a_missing_value_names_the_preset_and_the_placeholder():
    with pytest.raises(KeyError, match=r"'x_s'.*\['latent'\]"):
        presets.expand({"name": "x_{short}", "config": {"d": "{latent}"}}, [{"short": "s"}])


def test_every_paper_family_entry_exists_for_both_datasets():
    names = registry.list_models()
    for family in ("aegan", "apegan", "defensegan", "diffpure", "fmdefense", "magnet", "puvae"):
        assert {f"{family}_mnist", f"{family}_fmnist"} <= set(names), family
        assert registry.get_entry(f"{family}_fmnist")["metadata"]["dataset"] == "fashion_mnist"
