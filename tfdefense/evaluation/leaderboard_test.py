from tfdefense.evaluation import leaderboard
from tfdefense.zoo import registry, store


def test_every_card_number_traces_to_a_report():
    """A card's robustness figure must be one a report.json under the entry's reports/ holds."""
    for name in registry.list_models():
        if store.card(name):
            assert leaderboard.untraced_numbers(name) == [], name


def test_leaderboard_page_and_figure(tmp_path):
    table = leaderboard.write(str(tmp_path / "leaderboard.md"))
    text = (tmp_path / "leaderboard.md").read_text()
    assert "| model |" in text
    for row in table:
        assert f"`{row['name']}`" in text
    if table:
        assert (tmp_path / "leaderboard.png").stat().st_size > 1000


def test_strongest_white_box_is_a_linf_attack_at_the_standard_budget():
    white = {"pgd": {"accuracy_defended": 0.4, "params": {"eps": 0.3}},
             "autoattack": {"accuracy_defended": 0.3, "params": {"eps": 0.3}},
             "cw": {"accuracy_defended": 0.0, "params": {"confidence": 0.0}},
             "fgsm_0.4": {"accuracy_defended": 0.1, "params": {"eps": 0.4}}}
    assert leaderboard.strongest_white(white)[0] == "autoattack"
    assert leaderboard.strongest_white({"cw": white["cw"]}) is None


def test_white_box_through_an_asked_for_surrogate_counts_but_changed_settings_do_not():
    robustness = {"white_box": {"pgd": {"accuracy_defended": 0.7, "params": {"eps": 0.3}}},
                  'white_box_bpda="surrogate"': {"pgd": {"accuracy_defended": 0.2, "params": {"eps": 0.3}}},
                  "white_box_no_detector": {"pgd": {"accuracy_defended": 0.0, "params": {"eps": 0.3}}}}
    white = leaderboard.white_results(robustness)
    assert set(white) == {"pgd", "pgd (bpda surrogate)"}
    assert leaderboard.strongest_white(white)[0] == "pgd (bpda surrogate)"


def test_a_random_defense_attacked_through_one_noise_draw_counts():
    robustness = {"white_box": {"pgd": {"accuracy_defended": 0.5, "params": {"eps": 0.3}}},
                  "white_box_eot=1": {"pgd": {"accuracy_defended": 0.29, "params": {"eps": 0.3}}}}
    white = leaderboard.white_results(robustness)
    assert set(white) == {"pgd", "pgd (eot 1)"}
    assert leaderboard.strongest_white(white)[0] == "pgd (eot 1)"


def test_cost_column_reads_the_bench_result_in_the_card():
    cost = {"flops_per_image": {"total": 2.5e9}, "policies": {"float32": {"images_per_s": {"1": 40.0, "128": 90.5}}}}
    assert leaderboard.cost_summary(cost) == (90.5, 128, 2.5)
    assert leaderboard.cost_summary(None) is None and leaderboard.cost_summary({"policies": {}}) is None
    assert "90 img/s (b=128), 2.5 GFLOP" in leaderboard._cost_cell(leaderboard.cost_summary(cost))
