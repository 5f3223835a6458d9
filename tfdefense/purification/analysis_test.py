import numpy as np

from tfdefense.purification import analysis


class _Stub:
    """A defended model whose purifications and labels are given per input array."""

    def __init__(self, answers):
        self.answers = answers

    def defend(self, x, seed=0, desc=None):
        for inputs, purified, label in self.answers:
            if np.array_equal(inputs, x):
                return {"purified": purified, "label": label}
        raise AssertionError("unexpected input")


class _Reader:
    """Reads every image as class 0."""

    def predict_logits(self, x):
        return np.eye(10)[np.zeros(len(x), int)]


def test_projection_check_names_each_cause_once():
    clean = np.zeros((4, 2, 2, 1), np.float32)
    adv = np.full_like(clean, 0.3)
    y = np.zeros(4, int)
    # P(clean) is 0.2 from every x' (MSE 0.04). Image 1: P(x') is further (MSE 0.09): the search fell short.
    # Image 2: P(x') is x' itself: the projection is of another class. Image 3: P(clean) is wrong too.
    p_clean = np.full_like(clean, 0.1)
    p_adv = np.stack([np.full((2, 2, 1), v, np.float32) for v in (0.3, 0.0, 0.3, 0.3)])
    model = _Stub([(clean, p_clean, np.array([0, 0, 0, 5])), (adv, p_adv, np.array([0, 7, 7, 7]))])
    row = analysis.projection_check(model, adv, y, clean, readers=[_Reader(), _Reader()])
    assert row["purified"] == 0.25 and row["clean_purified"] == 0.75
    assert row["search_fell_short"] == row["projection_other_class"] == row["range_lacks_image"] == 0.25
    assert row["wrong_every_reader_right"] == 0.75 and row["wrong_no_reader_right"] == 0.0
    assert row["mse_clean_purification"] == 0.04 and row["mse_found"] == round(0.09 / 4, 4)
    table = analysis.markdown_table([{"input": "fgsm", **row}]).splitlines()
    assert len(table) == 3 and table[2].startswith("| fgsm | 0.250 | 0.750 | 0.250 |")
