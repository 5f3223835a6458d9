import json
import os
import warnings

import pytest

import tfdefense
from tfdefense.zoo import cards, registry, store


def test_list_models_has_the_zoo():
    names = tfdefense.list_models()
    for n in ("classifier_a_mnist", "classifier_b_fmnist", "classifier_c_mnist", "aegan_mnist", "aegan_fmnist"):
        assert n in names
    assert names == sorted(names)


def test_unknown_name_lists_available():
    with pytest.raises(tfdefense.UnknownModelError) as info:
        tfdefense.load("aegan_cifar")
    assert "aegan_cifar" in str(info.value) and "classifier_a_mnist" in str(info.value)


def test_duplicate_registration_raises():
    entry = registry.get_entry("classifier_a_mnist")
    with pytest.raises(KeyError, match="already registered"):
        registry.register("classifier_a_mnist", entry)


def _fake_models_dir(tmp_path, monkeypatch, name="classifier_c_mnist"):
    from tfdefense.families.classifiers import builders

    folder = tmp_path / name
    folder.mkdir()
    builders.classifier_c().save_weights(str(folder / "model.weights.h5"))
    card = {"name": name, "files": {"model.weights.h5": cards.sha256(str(folder / "model.weights.h5"))}}
    (folder / cards.CARD).write_text(json.dumps(card))
    monkeypatch.setenv(cards.MODELS_ENV, str(tmp_path))
    return folder


def test_load_verifies_sha256(tmp_path, monkeypatch):
    folder = _fake_models_dir(tmp_path, monkeypatch)
    assert tfdefense.load("classifier_c_mnist").count_params() == 199210
    with open(folder / "model.weights.h5", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(tfdefense.WeightsError, match="sha256"):
        tfdefense.load("classifier_c_mnist")


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(tfdefense.WeightsError, match=r"nowhere.*tfdefense train NAME --publish=DIR"):
        tfdefense.load("classifier_c_mnist", folder=str(tmp_path / "nowhere"))
    # An entry the package never published, in no store: how to train and where to put it.
    monkeypatch.setenv("TFDEFENSE_HOME", str(tmp_path / "cache"))
    with pytest.raises(tfdefense.WeightsError, match="tfdefense train advtrain_a_fmnist_fast --publish=DIR"):
        tfdefense.load("advtrain_a_fmnist_fast")


def test_classifier_takes_no_overrides(tmp_path, monkeypatch):
    _fake_models_dir(tmp_path, monkeypatch)
    with pytest.raises(TypeError, match="no inference settings"):
        tfdefense.load("classifier_c_mnist", steps=3)


def test_changing_a_calibrated_setting_warns():
    card = {"inference": {"step_size": 0.001, "thresholds": {"purification_error": 0.04}}}
    published = {"steps": 200, "restarts": 10, "step_size": 0.001}
    with pytest.warns(UserWarning, match=r"measured with steps=200; with steps=30 they are not recalibrated"):
        registry.warn_uncalibrated("defensegan_fmnist", card, published, {**published, "steps": 30})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.warn_uncalibrated("defensegan_fmnist", card, published, dict(published))  # the published settings
        registry.warn_uncalibrated("defensegan_fmnist", {}, published, {**published, "steps": 30})  # nothing calibrated


def test_load_warns_when_a_search_setting_leaves_its_calibration():
    with pytest.warns(UserWarning, match="defensegan_mnist: the card's calibrated step_size, thresholds"):
        tfdefense.load("defensegan_mnist", steps=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tfdefense.load("defensegan_mnist", steps=200, threshold=None)  # the published search; detectors are no setting


def test_packaged_cards_describe_the_published_weights():
    """Every card the package ships names its entry, lists its files with sizes and holds measured
    numbers; the weights the resolver finds (here: the checkout's saved_models/) match it, and the
    checkout's own card is the packaged one, byte for byte."""
    names = store.published()
    assert len(names) >= 20 and set(names) <= set(tfdefense.list_models())
    for name in names:
        card = store.packaged_card(name)
        assert card["name"] == name and card["files"] and set(card["file_sizes"]) == set(card["files"])
        assert card["measured"], f"{name} card has no measured numbers"
        folder, resolved = store.resolve(name, download=False)  # verifies every sha256
        assert resolved == card
        for fname, size in card["file_sizes"].items():
            assert os.path.getsize(os.path.join(folder, fname)) == size
        if store.checkout_dir():
            with open(os.path.join(store.checkout_dir(), name, cards.CARD)) as a, \
                    open(os.path.join(store.PACKAGED, f"{name}.json")) as b:
                assert a.read() == b.read(), f"{name}: the packaged card differs from saved_models/{name}/"


def test_load_under_a_dtype_policy_and_restore_the_global_one():
    """`load(dtype_policy=...)` builds the networks under that policy (float32 weights, bfloat16 compute)
    and leaves the global policy as it was; the labels mostly agree with float32's."""
    import keras
    import numpy as np

    import tfdefense
    from tfdefense import testing

    before = keras.config.dtype_policy().name
    fast = tfdefense.load("classifier_c_mnist", dtype_policy="mixed_bfloat16")
    assert keras.config.dtype_policy().name == before
    assert {layer.dtype_policy.name for layer in fast.classifier.layers if layer.weights} == {"mixed_bfloat16"}
    assert all(w.dtype == "float32" for w in fast.classifier.weights)
    x, _ = testing.blob_images(64, seed=1)
    plain = tfdefense.load("classifier_c_mnist")
    assert np.mean(fast.defend(x)["label"] == plain.defend(x)["label"]) >= 0.9
