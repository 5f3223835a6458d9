import json

import pytest

from tfdefense.zoo import cards


def _card_folder(tmp_path, card):
    (tmp_path / "model.weights.h5").write_bytes(b"weights")
    (tmp_path / cards.CARD).write_text(card if isinstance(card, str) else json.dumps(card))
    return str(tmp_path)


def _writable_card(tmp_path):
    """A card with one verified weight file and what `write_card` renders."""
    folder = _card_folder(tmp_path, {"name": "x"})
    training = {"batch_size": 8, "learning_rate": 1e-3, "seed": 0, "wall_time_s": 1.0, "machine": "m", "command": "c"}
    (tmp_path / cards.CARD).write_text(json.dumps(
        {"name": "x", "family": "f", "dataset": "mnist", "architecture": {}, "training": training, "measured": {},
         "files": {"model.weights.h5": cards.sha256(str(tmp_path / "model.weights.h5"))}}))
    return folder


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


def test_figures_measured_with_changed_settings_get_their_own_section(tmp_path):
    from tfdefense import evaluation

    folder = _writable_card(tmp_path)

    def report(accuracy, overrides):
        result = evaluation.AttackResult("fgsm", "gray", {"eps": 0.3}, 10, 0.1, accuracy, 0.5, 0.9, 0.3, 5.0, 1.0)
        return evaluation.Report("x", "mnist", "eval", 10, 0, {"accuracy_defended": accuracy}, [result],
                                 settings={"overrides": overrides})

    cards.write_report(folder, report(0.4, {}))
    card = cards.write_report(folder, report(0.8, {"threshold": None}))
    robustness = card["measured"]["robustness"]
    assert robustness["gray_box"]["fgsm"]["accuracy_defended"] == 0.4  # the published model's figure survives
    assert robustness["gray_box_no_detector"]["fgsm"]["accuracy_defended"] == 0.8
    assert robustness["gray_box"]["fgsm"]["accuracy_or_rejected"] == 0.9
    assert card["measured"]["clean_accuracy_defended"]["value"] == 0.4
    assert card["measured"]["clean_accuracy_defended_no_detector"]["value"] == 0.8
    assert cards.section_key("white", {"steps": 30}) == "white_box_steps=30"


def test_a_smaller_run_never_replaces_a_figure_measured_on_more_images(tmp_path):
    from tfdefense import evaluation

    folder = _writable_card(tmp_path)

    def report(n, accuracy):
        result = evaluation.AttackResult("pgd", "white", {"eps": 0.3}, n, 0.1, accuracy, 0.5, 0.9, 0.3, 5.0, 1.0)
        return evaluation.Report("x", "mnist", "eval", n, 0, {"accuracy_defended": 0.9}, [result],
                                 settings={"overrides": {}})

    cards.write_report(folder, report(1000, 0.4))
    card = cards.write_report(folder, report(100, 0.1))
    assert card["measured"]["robustness"]["white_box"]["pgd"] == {**card["measured"]["robustness"]["white_box"]["pgd"],
                                                                 "n": 1000, "accuracy_defended": 0.4}
    card = cards.write_report(folder, report(1000, 0.3))  # the same n replaces it
    assert card["measured"]["robustness"]["white_box"]["pgd"]["accuracy_defended"] == 0.3


def test_paper_figure_says_what_it_counts():
    card = {"reported": {"gray_box": {"fgsm_0.3": 0.8},
                         "gray_box_defended_or_detected": {"fgsm_0.3": 0.99, "cw_l2": 0.98, "deepfool_linf": 0.97}}}
    assert cards.paper_figure(card, "gray_box", "fgsm") == (0.8, "accuracy")  # plain accuracy first
    assert cards.paper_figure(card, "gray_box", "cw") == (0.98, "defended or detected")
    assert cards.paper_figure(card, "gray_box", "deepfool_linf") == (0.97, "defended or detected")
    assert cards.paper_figure(card, "white_box", "fgsm") == (None, None)


def test_white_box_through_an_asked_for_surrogate_gets_its_own_section(tmp_path):
    from tfdefense import evaluation

    folder = _writable_card(tmp_path)
    results = [evaluation.AttackResult("pgd", threat, {"eps": 0.3}, 10, 0.1, 0.5, 0.0, 0.5, 0.3, 5.0, 1.0)
               for threat in ("gray", "white")]
    report = evaluation.Report("x", "mnist", "eval", 10, 0, {"accuracy_defended": 0.9}, results,
                               settings={"overrides": {}, "white_box": {"bpda": "surrogate"}})
    robustness = cards.write_report(folder, report)["measured"]["robustness"]
    assert set(robustness) == {"gray_box", 'white_box_bpda="surrogate"'}

def test_concurrent_card_updates_keep_every_field(tmp_path):
    """Two processes updating one card (say a gray and a white evaluation with --update-card)
    take turns under the card's lock, so neither overwrites the other's field with a stale card."""
    import multiprocessing

    folder = _writable_card(tmp_path)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_fields, args=(folder, f"w{i}")) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    measured = cards.read_card(folder)["measured"]
    assert {f"w{i}_{k}" for i in range(2) for k in range(20)} <= set(measured)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _add_fields(folder, worker):
    for k in range(20):
        cards.update_card(folder, lambda card: card["measured"].__setitem__(f"{worker}_{k}", k))


def test_card_readme_renders_the_bench_result_and_the_sanity_checks():
    from tfdefense.zoo import cards

    figures = {"images_per_s": {"1": 40.0, "128": 90.5}, "fraction_of_fp32_matmul": 0.61, "peak_memory_mb": 900.0,
               "latency_ms": {"first_image": {"in_process": {"p50": 2.0}, "exported": {"p50": 2.2}}},
               "export": {"variables_to_weights": 1.001, "weights_mb": 6.0, "saved_model_mb": 10.2},
               "fp32_matmul_gflops": 148.0,
               "op_profile": {"batch": 128, "ops": [{"op": "Conv2D", "share": 0.64}, {"op": "Mean", "share": 0.1}],
                              "flop_ops": {"share": 0.64, "fraction_of_fp32_matmul": 0.91}}}
    bf16 = {"error": "TypeError: no bfloat16 here"}
    card = {"measured": {"cost": {"flops_per_image": {"total": 2.5e9}, "machine": {"cpus": 2},
                                  "matmul_gflops": {"float32": 150.0}, "images": "mnist eval",
                                  "recommended_policy": "float32", "accuracy_images": {"n": 300, "eps": 0.3},
                                  "policies": {"float32": figures, "mixed_bfloat16": bf16}},
                         "sanity": {"n": 20, "white_box": {"eot": 2},
                                    "checks": {"unbounded_attack_succeeds": {"passed": False, "detail": "0.4"}}}}}
    text = "\n".join(cards._cost_lines(card) + cards._sanity_lines(card))
    assert "2.5 GFLOP per purified image" in text
    assert "| float32 | 1: 40.0, 128: 90.5 | 0.61 (148.0) | 2.0 / 2.2 | 1.001, 1.7 | 900.0 |" in text
    assert "| mixed_bfloat16 | TypeError: no bfloat16 here |" in text
    assert "Conv2D 64%, Mean 10%; the convolutions and matmuls take 64% of the time at 0.91" in text
    assert "served as **float32**" in text
    assert "FAILED unbounded_attack_succeeds: 0.4" in text
