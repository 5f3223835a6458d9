import os

from tfdefense.zoo import calibration, cards, registry, training


def test_calibrate_writes_threshold_and_best_step_size(tiny_data_dir, tmp_path):
    name = "tiny_aegan_calibration_test"
    if name not in registry.list_models():
        entry = registry.get_entry("aegan_mnist")
        entry.update(path=name, config={**entry["config"], "latent_dim": 4, "filters": 2},
                     train={**entry["train"], "epochs": 1, "steps_per_epoch": 2, "dtype_policy": "float32"})
        entry.pop("name")
        registry.register(name, entry)
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(name, workdir, verbose=0)
    folder = os.path.join(workdir, "export")

    card = calibration.calibrate(name, folder, n=20, step_sizes=(0.01, 0.1))
    tuning = card["calibration"]["tuning"]
    assert set(tuning) == {"fgsm", "pgd"}
    assert set(tuning["fgsm"]) == {"0 (G(F(x)), no search)", "0.01", "0.1"}
    worst = lambda s: min(tuning[a][str(s)] for a in tuning)  # noqa: E731  (worst case over the attacks)
    assert card["inference"]["step_size"] == max((0.01, 0.1), key=worst)
    assert card["inference"]["thresholds"]["l1"] > 0
    assert cards.read_card(folder)["inference"] == card["inference"]  # written, and the weights still verify


def test_diffpure_calibration_chooses_t_star_then_the_sampler_steps(tiny_data_dir, tmp_path):
    from tfdefense import testing

    name = testing.register_tiny_entry("diffpure")
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(name, workdir, verbose=0,
                                overrides={"epochs": 1, "steps_per_epoch": 1, "batch_size": 8, "dtype_policy": "float32"})
    folder = os.path.join(workdir, "export")
    card = calibration.calibrate(name, folder, n=12, t_stars=(5, 20), sampler_steps=(1, 2))
    tuning = card["calibration"]["tuning"]
    assert set(tuning) == {"t_star", "steps"}
    for key, values in (("t_star", (5, 20)), ("steps", (1, 2))):
        assert set(tuning[key]) == {"clean", "fgsm", "pgd"} and set(tuning[key]["clean"]) == {str(v) for v in values}
        worst = lambda v, t=tuning[key]: min(t[row][str(v)] for row in t)  # noqa: E731
        assert card["inference"][key] == max(values, key=worst)
    assert cards.read_card(folder)["inference"]["steps"] == card["inference"]["steps"]
