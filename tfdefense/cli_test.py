import json
import os
import subprocess
import sys
import warnings


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-c", "from tfdefense.cli import run; run()", *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_list_and_unknown_model():
    out = _run("list")
    assert out.returncode == 0 and "classifier_a_mnist" in out.stdout
    bad = _run("evaluate", "nope_mnist")
    assert bad.returncode == 1 and "Unknown model 'nope_mnist'" in bad.stderr


def test_train_smoke_and_evaluate(tiny_data_dir, tmp_path):
    workdir = str(tmp_path / "w")
    env = {"TFDEFENSE_MODELS_DIR": str(tmp_path / "zoo")}
    out = _run("train", "classifier_c_mnist", f"--workdir={workdir}", "--epochs=1", "--steps_per_epoch=2",
               "--learning_rate=0.0005", "--publish", env=env)
    assert out.returncode == 0, out.stderr
    card = json.load(open(tmp_path / "zoo" / "classifier_c_mnist" / "model_card.json"))
    assert card["training"]["learning_rate"] == 0.0005  # the override is what ran, and the card says so
    # A snapshot published early says how far it got of the registered schedule.
    listing = _run("list", env=env).stdout
    assert any(line.startswith("classifier_c_mnist") and " 1/10 epochs" in line for line in listing.splitlines())
    ev = _run("evaluate", "classifier_c_mnist", "--attacks=none", "--n=50", f"--output_dir={tmp_path}/a", env=env)
    assert ev.returncode == 0, ev.stderr
    assert "n=50" in ev.stdout and "Clean: undefended" in ev.stdout
    # The run's own export/ evaluates the same without publishing; a wrong folder is named in the error.
    run = _run("evaluate", "classifier_c_mnist", "--attacks=none", "--n=50", f"--source={workdir}/export",
               f"--output_dir={tmp_path}/b", env=env)
    assert run.returncode == 0, run.stderr
    clean = [json.load(open(tmp_path / d / "report.json"))["clean"] for d in "ab"]
    assert clean[0] == clean[1]
    missing = _run("evaluate", "classifier_c_mnist", "--attacks=none", "--n=50", f"--source={tmp_path}/nowhere", env=env)
    assert missing.returncode == 1 and "nowhere" in missing.stderr


def test_each_command_has_its_own_help_and_flags():
    top = _run("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in ("evaluate", "download", "release", "train"))
    ev = _run("evaluate", "--help")
    assert ev.returncode == 0 and "--attacks" in ev.stdout and "--warm_start" not in ev.stdout
    wrong = _run("list", "--attacks=fgsm")  # a flag that means nothing to a command is an error
    assert wrong.returncode == 2 and "unrecognized arguments: --attacks=fgsm" in wrong.stderr


def test_set_with_publish_is_refused(tmp_path):
    out = _run("train", "aegan_mnist", "--set=adversarial=false", "--publish", f"--workdir={tmp_path}")
    assert out.returncode == 1 and "variant" in out.stderr


def test_evaluate_with_attacks_writes_report(tiny_data_dir, tmp_path):
    env = {"TFDEFENSE_MODELS_DIR": str(tmp_path / "zoo")}
    out = _run("train", "classifier_c_mnist", f"--workdir={tmp_path / 'w'}", "--epochs=1", "--steps_per_epoch=2",
               "--publish", env=env)
    assert out.returncode == 0, out.stderr
    report_dir = tmp_path / "report"
    ev = _run("evaluate", "classifier_c_mnist", "--attacks=fgsm,pgd", "--threat=gray,white,black", "--n=20",
              "--params={\"pgd\": {\"nb_iter\": 3}}", "--black_box={\"arch\": \"c\", \"rounds\": 2, \"epochs\": 1}",
              f"--output_dir={report_dir}", "--update-card", env=env)
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert (report_dir / "report.json").is_file() and (report_dir / "examples.png").is_file()
    assert "| black | fgsm" in ev.stdout
    card = json.load(open(tmp_path / "zoo" / "classifier_c_mnist" / "model_card.json"))
    assert "fgsm" in card["measured"]["robustness"]["gray_box"]
    # The report says which weights it measured, so it cannot be mistaken for one of other weights.
    weights = json.load(open(report_dir / "report.json"))["settings"]["weights"]
    assert weights["files"] == card["files"] and weights["epochs_completed"] == 1


def test_inference_settings_are_checked_and_any_entry_exports(tmp_path):
    bad = _run("evaluate", "aegan_mnist", "--set=stepz=3")
    assert bad.returncode == 1 and "stepz" in bad.stderr and "'steps'" in bad.stderr, bad.stderr[-2000:]
    bare = _run("evaluate", "classifier_c_mnist", "--threshold=0.1")
    assert bare.returncode == 1 and "no detectors" in bare.stderr, bare.stderr[-2000:]
    out = _run("export", "classifier_c_mnist", str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert os.path.isfile(tmp_path / "classifier_c_mnist" / "1" / "saved_model.pb")


def test_train_evaluate_export_a_defense_for_your_data(tmp_path, capsys):
    """The command-line path of a user with a saved Keras classifier and 32x32x3 arrays."""
    from tfdefense import cli, testing

    data, classifier = testing.user_data(str(tmp_path), (32, 32, 3), classes=3)
    run = str(tmp_path / "run")
    assert cli.main(["train", "magnet", f"--data={data}", f"--classifier={classifier}", f"--workdir={run}",
                     "--epochs=1", "--steps_per_epoch=1", "--batch_size=8", "--name=magnet_yours"]) == 0
    export_dir = os.path.join(run, "export")
    assert {"autoencoder.weights.h5", "classifier.keras"} <= set(os.listdir(export_dir))
    assert cli.main(["calibrate", f"--model={export_dir}", "--n=8"]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():  # its own classifier.keras is the calibrated one: no "not recalibrated"
        warnings.filterwarnings("error", message=".*not recalibrated")
        assert cli.main(["evaluate", f"--model={export_dir}", "--attacks=fgsm", "--threat=gray,white", "--n=8",
                         "--update-card"]) == 0
    out = capsys.readouterr().out
    assert "magnet_yours" in out and "| gray | fgsm" in out and "| white | fgsm" in out
    board = tmp_path / "board" / "leaderboard.md"
    assert cli.main(["leaderboard", f"--output={board}", f"--model={export_dir}"]) == 0
    assert "magnet_yours" in board.read_text()
    assert cli.main(["export", f"--model={export_dir}", str(tmp_path / "serving")]) == 0
    assert os.path.isdir(tmp_path / "serving" / "magnet_yours" / "1")
    # a family is not an entry, and --data needs a family
    assert cli.main(["train", "magnet", f"--workdir={run}2"]) == 1
    assert "is a family" in capsys.readouterr().err
    assert cli.main(["train", "magnet_mnist", f"--data={data}"]) == 1
    assert "trains a family" in capsys.readouterr().err


def test_export_all_serves_the_zoo_by_name(tmp_path):
    out = _run("export", "--all", str(tmp_path), "--names=classifier_c_mnist,apegan_mnist")
    assert out.returncode == 0, out.stderr[-2000:]
    config = (tmp_path / "models.config").read_text()
    assert "name: 'apegan_mnist'" in config and "base_path: '/models/classifier_c_mnist'" in config
    assert os.path.isfile(tmp_path / "apegan_mnist" / "1" / "saved_model.pb") and "docker run" in out.stdout
    both = _run("export", "apegan_mnist", "--all", str(tmp_path))
    assert both.returncode == 1 and "--all DIR exports every entry" in both.stderr
    missing = _run("export", "apegan_mnist")
    assert missing.returncode == 1 and "name the folder" in missing.stderr
