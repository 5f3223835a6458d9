import numpy as np

from tfdefense.evaluation import analysis


class _Stub:
    """A defended model whose purifications and labels are given per input array."""

    purifier = None  # not a latent search: P(clean) is the only reference point

    def __init__(self, answers):
        self.answers = answers

    def defend(self, x, seed=0, desc=None):
        for inputs, purified, label in self.answers:
            if np.array_equal(inputs, x):
                return {"purified": purified, "label": label}
        raise AssertionError("unexpected input")


class _Reader:
    """Reads every image as class 0."""

    def __call__(self, x, training=False):
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
    assert len(table) == 3 and table[2].startswith("| fgsm | 0.250 | 0.750 | - | 0.250 |")
    result = {"split": "dev", "n": 4, "seed": 0, "eps": 0.3, "settings": {"step_size": 0.01},
              "rows": [{"input": "fgsm", **row}]}
    item = analysis.card_analysis(result, "reports/projection/projection.json")
    assert "search step 0.01 instead of the shipped one" in item["setting"] and item["table"].count("\n") == 2


def test_projection_check_searches_from_the_clean_code_for_a_latent_search():
    import keras

    from tfdefense.purification import LatentSearchPurifier

    keras.utils.set_random_seed(0)
    decoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(784, activation="sigmoid"),
                                keras.layers.Reshape((28, 28, 1))])
    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])

    class Model:
        purifier = LatentSearchPurifier(decoder, steps=5, step_size=0.1, restarts=2)

        def defend(self, x, seed=0, desc=None):
            purified = np.asarray(self.purifier(x, seed=seed)["images"])
            return {"purified": purified, "label": np.asarray(classifier(purified)).argmax(-1)}

    model = Model()
    model.classifier = classifier
    rng = np.random.default_rng(0)
    clean = rng.uniform(size=(6, 28, 28, 1)).astype("float32")
    adv = np.clip(clean + rng.choice([-0.3, 0.3], size=clean.shape), 0, 1).astype("float32")
    reference = analysis.clean_reference(model, clean)
    assert reference["codes"].shape == (6, 3)
    y = reference["label"]  # P(clean) is right by construction
    row = analysis.projection_check(model, adv, y, clean, reference=reference)
    assert row["clean_purified"] == 1.0 and 0.0 <= row["from_clean_code"] <= 1.0
    assert row["range_lacks_image"] == 0.0
    causes = row["search_fell_short"] + row["projection_other_class"]
    assert abs(causes - (1 - row["purified"])) < 1e-3
