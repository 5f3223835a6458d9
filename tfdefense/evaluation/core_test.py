import json

import keras
import numpy as np
import pytest

from tfdefense import evaluation, testing
from tfdefense.evaluation import sanity
from tfdefense.defense import networks
from tfdefense.families.aegan.defended import build_defended
from tfdefense.families.classifiers import builders as cbuilders

FAST = {"pgd": {"nb_iter": 3}, "cw": {"binary_search_steps": 1, "max_iterations": 3, "n": 4},
        "spsa": {"nb_iter": 2, "spsa_samples": 8, "n": 2}, "pgd_detector": {"nb_iter": 3},
        "deepfool": {"max_iter": 3}, "bim": {"nb_iter": 3}, "mim": {"nb_iter": 3}}


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    clf = cbuilders.classifier_c(units=8)
    model = build_defended(networks.encoder(4, 2), networks.decoder(4, 2), clf, steps=2, threshold=0.3)
    x = testing.tiny_images(6, seed=3)
    y = np.arange(6) % 10
    return model, x, y


def test_report_schema_all_threats(tiny, tmp_path):
    model, x, y = tiny
    report = evaluation.evaluate(model, x, y, attacks=("fgsm", "pgd", "cw", "deepfool"),
                                 threats=("gray", "white", "black"), eps=0.2, params=FAST,
                                 holdout=testing.tiny_images(10, seed=4),
                                 black_box={"arch": "c", "rounds": 2, "epochs": 1, "units": 8}, name="tiny")
    keys = {(r.threat, r.attack) for r in report.results}
    assert ("white", "pgd_detector") in keys and ("black", "fgsm") in keys and ("gray", "cw") in keys
    for r in report.results:
        assert 0 <= r.accuracy_defended <= 1 and 0 <= r.rejection_rate <= 1
        assert r.accuracy_or_rejected >= r.accuracy_defended
        if r.attack in ("fgsm", "pgd", "pgd_detector"):
            assert r.mean_linf <= 0.2 + 1e-6 and r.params["eps"] == 0.2
    cw = next(r for r in report.results if r.attack == "cw")
    assert cw.n == 4  # "n" in params caps expensive attacks
    assert report.substitute["oracle_queries"] >= 10
    report.write(str(tmp_path))
    data = json.load(open(tmp_path / "report.json"))
    assert {"model", "n", "seed", "clean", "results", "settings"} <= set(data)
    assert data["settings"]["white_box_eot"] == 1  # the tiny defense's search starts from F(x) only
    assert "| white | pgd_detector" in (tmp_path / "report.md").read_text()


def test_detector_aware_attack_named_explicitly_runs_once(tiny):
    model, x, y = tiny
    report = evaluation.evaluate(model, x, y, attacks=("pgd_detector",), threats=("white",), eps=0.2, params=FAST)
    assert [r.attack for r in report.results] == ["pgd_detector"]


def test_deterministic_for_a_seed(tiny):
    model, x, y = tiny
    a = evaluation.evaluate(model, x, y, attacks=("pgd",), threats=("gray", "white"), params=FAST, seed=5)
    b = evaluation.evaluate(model, x, y, attacks=("pgd",), threats=("gray", "white"), params=FAST, seed=5)
    strip = lambda r: [{k: v for k, v in vars(x).items() if k != "wall_time_s"} for x in r.results]  # noqa: E731
    assert strip(a) == strip(b)


def test_unknown_names_fail_early(tiny):
    model, x, y = tiny
    with pytest.raises(ValueError, match="Unknown attack"):
        evaluation.evaluate(model, x, y, attacks=("lbfgs",))
    with pytest.raises(ValueError, match="threat"):
        evaluation.evaluate(model, x, y, attacks=("fgsm",), threats=("grey",))
    with pytest.raises(ValueError, match="holdout"):
        evaluation.evaluate(model, x, y, attacks=("fgsm",), threats=("black",))


def test_sanity_checks_run_and_report(tiny):
    model, x, y = tiny
    checks = sanity.run(model, x, y, n=4, spsa_n=2)
    assert set(checks) == {"undefended_falls_under_pgd", "more_iterations_never_help", "unbounded_attack_succeeds",
                           "attack_gradient_nonzero", "gradient_free_not_much_stronger"}
    assert checks["attack_gradient_nonzero"]["passed"]
    assert all(isinstance(c["detail"], str) for c in checks.values())


def test_eps_sweep_and_detector(tiny):
    model, x, y = tiny
    sweep = evaluation.eps_sweep(model, x, y, [0.0, 0.2])
    assert len(sweep["defended"]) == 2 and sweep["worst_defended"] == min(sweep["defended"])
    # a rejection counts in its own column only: it can raise it above plain accuracy, never lower it
    assert all(h >= d for h, d in zip(sweep["defended_or_rejected"], sweep["defended"]))
    assert sweep["worst_defended_or_rejected"] == min(sweep["defended_or_rejected"])
    clean, adv, aucs = evaluation.detector_auc(model, x, y, "l1", eps_values=(0.1, 0.3))
    assert set(aucs) == {"0.1", "0.3"} and all(0 <= v <= 1 for v in aucs.values())


def test_report_round_trips_through_json(tiny, tmp_path):
    model, x, y = tiny
    report = evaluation.evaluate(model, x, y, attacks=("fgsm",), threats=("gray",))
    report.write(str(tmp_path))
    again = evaluation.Report.read(str(tmp_path / "report.json"))
    assert again.to_dict() == report.to_dict()


def test_distortion_of_the_fooled_examples_only(tiny):
    model, x, y = tiny
    report = evaluation.evaluate(model, x, y, attacks=("fgsm", "gaussian_noise"), threats=("gray",), eps=0.2)
    fgsm, noise = report.results
    assert noise.params == {"variance": 0.05} and "eps" not in noise.params
    for r in (fgsm, noise):
        if r.fooled_undetected == 0:
            assert r.mean_l2_fooled is None and r.mean_linf_fooled is None
        else:
            assert r.mean_linf_fooled <= (0.2 + 1e-6 if r is fgsm else 1.0) and r.mean_l2_fooled > 0


def test_a_robust_classifier_is_its_own_defense_in_the_sanity_checks(tiny):
    from tfdefense.defense.defended import DefendedClassifier

    model, x, y = tiny
    bare = DefendedClassifier(model.classifier, name="robust")  # no purifier, no detector
    checks = sanity.run(bare, x, y, n=4, spsa_n=2)
    assert checks["undefended_falls_under_pgd"]["passed"] is None
    assert "does not apply" in checks["undefended_falls_under_pgd"]["detail"]
    if model.purifier is not None or model.detectors:
        # A defended model's check applies, unless the classifier behind it is itself robust: it holds at eps,
        # and the same attack unbounded breaks it (a purifier in front of an adversarially trained classifier).
        check = sanity.run(model, x, y, n=4, spsa_n=2)["undefended_falls_under_pgd"]
        assert check["passed"] is not None or "itself robust" in check["detail"]


def test_random_defense_is_also_scored_over_k_queries():
    """An input counts under k queries only if all k seeded answers are right: never above the one-shot figure,
    equal to the answers taken seed by seed, and absent for a deterministic defense."""
    import keras

    from tfdefense.defense.defended import DefendedClassifier
    from tfdefense.defense.networks import classifier_c

    keras.utils.set_random_seed(0)
    classifier = classifier_c(units=16)
    x, y = testing.blob_images(64, seed=2)
    y = np.asarray(classifier(x, training=False)).argmax(-1)  # the bare classifier is right on every image
    model = DefendedClassifier(classifier, testing.noisy_purifier())
    report = evaluation.evaluate(model, x, y, attacks=("fgsm",), eps=0.05, k_queries=5)
    r = report.results[0]
    answers = np.stack([model.defend(r_x, seed=s)["label"] == y for s in range(5) for r_x in [x]])
    assert report.clean["queries_k"] == 5
    assert report.clean["accuracy_k_queries"] == pytest.approx(float(np.mean(answers.all(0))))
    assert report.clean["accuracy_k_queries"] < report.clean["accuracy_defended"]  # the noise flips some answers
    assert r.queries_k == 5 and r.accuracy_k_queries <= r.accuracy_defended
    plain = evaluation.evaluate(DefendedClassifier(classifier), x, y, attacks=("fgsm",), eps=0.05)
    assert plain.results[0].queries_k is None and "queries_k" not in plain.clean


def test_no_images_is_a_clear_error(tiny):
    model, x, _ = tiny
    with pytest.raises(ValueError, match="no images"):
        evaluation.predict_logits(model.classifier, x[:0])
