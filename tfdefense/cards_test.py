import json

import pytest

from tfdefense import cards


def _card_folder(tmp_path, card):
    (tmp_path / "model.weights.h5").write_bytes(b"weights")
    (tmp_path / cards.CARD).write_text(card if isinstance(card, str) else json.dumps(card))
    return str(tmp_path)


def test_card_without_files_fails_closed(tmp_path):
    folder = _card_folder(tmp_path, {"name": "x", "measured": {}})
    with pytest.raises(cards.WeightsError, match="lists no weight files"):
        cards.read_card(folder)
    assert cards.read_card(folder, verify=False)["name"] == "x"  # reading for display still works


def test_truncated_card_names_its_file(tmp_path):
    digest = cards.sha256(str(tmp_path / "model.weights.h5")) if (tmp_path / "model.weights.h5").exists() else "0"
    folder = _card_folder(tmp_path, json.dumps({"name": "x", "files": {"model.weights.h5": digest}})[:20])
    with pytest.raises(cards.WeightsError, match=r"model_card\.json is not valid JSON"):
        cards.read_card(folder)


def test_tampered_file_is_refused(tmp_path):
    folder = _card_folder(tmp_path, {"name": "x"})
    card = {"name": "x", "files": {"model.weights.h5": cards.sha256(str(tmp_path / "model.weights.h5"))}}
    (tmp_path / cards.CARD).write_text(json.dumps(card))
    assert cards.read_card(folder)["name"] == "x"
    (tmp_path / "model.weights.h5").write_bytes(b"weightz")
    with pytest.raises(cards.WeightsError, match="sha256"):
        cards.read_card(folder)


def test_result_key_names_other_budgets():
    assert cards.result_key("fgsm", {"eps": 0.3}) == "fgsm"
    assert cards.result_key("fgsm", {"eps": 0.1}) == "fgsm_0.1"
    assert cards.result_key("cw", {"confidence": 0.0}) == "cw"
