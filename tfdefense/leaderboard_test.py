import os

from tfdefense import cards, leaderboard, registry


def test_every_card_number_traces_to_a_report():
    """A card's robustness figure must be one a report.json under the entry's reports/ holds."""
    for name in registry.list_models():
        if os.path.isfile(os.path.join(registry.weights_dir(name), cards.CARD)):
            assert leaderboard.untraced_numbers(name) == [], name


def test_leaderboard_page_and_figure(tmp_path):
    table = leaderboard.write(str(tmp_path / "leaderboard.md"))
    text = (tmp_path / "leaderboard.md").read_text()
    assert "| model |" in text
    for row in table:
        assert f"`{row['name']}`" in text
    if table:
        assert (tmp_path / "leaderboard.png").stat().st_size > 1000
