import json
import os

import pytest

from tfdefense import testing
from tfdefense.zoo import cards, registry, training

TINY = {"family": "classifier", "config": {"arch": "c", "units": 8}, "path": "tiny_c", "name": "tiny_c",
        "train": {"epochs": 1, "batch_size": 20, "learning_rate": 1e-2, "seed": 0},
        "metadata": {"dataset": "mnist", "reported": {"clean_accuracy": 0.5}}}


def test_train_writes_card_and_resumes(tiny_data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    card = training.train_and_evaluate(TINY, workdir, verbose=0)
    assert card["training"]["epochs_completed"] == 1
    assert 0.0 <= card["measured"]["clean_accuracy"]["value"] <= 1.0
    assert card["reported"] == {"clean_accuracy": 0.5}
    export = os.path.join(workdir, "export")
    assert cards.read_card(export)["files"]["model.weights.h5"] == card["files"]["model.weights.h5"]

    with pytest.raises(FileExistsError, match="--resume"):
        training.train_and_evaluate(TINY, workdir, verbose=0)

    publish = str(tmp_path / "zoo")
    card2 = training.train_and_evaluate(TINY, workdir, resume=True, overrides={"epochs": 2},
                                        publish_dir=publish, verbose=0)
    state = json.load(open(os.path.join(workdir, training.STATE)))
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert card2["training"]["epochs_completed"] == 2
    assert os.path.isfile(os.path.join(publish, "tiny_c", "README.md"))


def test_publish_replaces_weights_and_keeps_reports(tmp_path):
    export, dst = tmp_path / "export", tmp_path / "zoo" / "m"
    export.mkdir()
    (export / "model.weights.h5").write_text("new")
    (dst / "reports" / "gray").mkdir(parents=True)
    (dst / "model.weights.h5").write_text("old")
    (dst / "stale.h5").write_text("old")
    (dst / "reports" / "gray" / "report.json").write_text("{}")
    training.publish(str(export), str(dst))
    assert (dst / "model.weights.h5").read_text() == "new" and not (dst / "stale.h5").exists()
    assert (dst / "reports" / "gray" / "report.json").read_text() == "{}"  # a user's measurements survive
    assert not (tmp_path / "zoo" / "m.old").exists() and not (tmp_path / "zoo" / "m.tmp").exists()


def test_resume_restores_optimizer_state(tiny_data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(TINY, workdir, verbose=0)
    entry = dict(TINY)
    family = registry.get_family("classifier")
    model = family.build_for_training(entry, training.train_config(entry))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(workdir, training.CHECKPOINT))
    assert int(model.optimizer.iterations.numpy()) == 200 // 20  # one epoch of steps


def test_learning_rate_drops_divide_the_rate_and_survive_resume(tiny_data_dir, tmp_path):
    config = training.train_config(TINY, {"learning_rate_drops": [1, 3]})
    assert [training.learning_rate_at(config, e) for e in range(4)] == pytest.approx([1e-2, 1e-3, 1e-3, 1e-4])
    workdir = str(tmp_path / "run")
    overrides = {"steps_per_epoch": 1, "learning_rate_drops": [1]}
    training.train_and_evaluate(TINY, workdir, verbose=0, overrides=overrides)
    card = training.train_and_evaluate(TINY, workdir, resume=True, verbose=0, overrides={**overrides, "epochs": 2})
    assert card["training"]["learning_rate_drops"] == [1]
    assert "divided by 10 from epoch 2" in open(os.path.join(workdir, "export", "README.md")).read()
    model = registry.get_family("classifier").build_for_training(TINY, training.train_config(TINY))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(workdir, training.CHECKPOINT))  # the optimizer's rate is in the checkpoint
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)


def test_unknown_override():
    with pytest.raises(ValueError, match="Unknown training setting"):
        training.train_config(TINY, {"epoch": 3})


def test_gan_family_trains_and_resumes(tiny_data_dir, tmp_path):
    # A model whose input is a latent code, not an image (caught a crash in `tfdefense train defensegan_*`).
    entry = {**registry.get_entry("defensegan_mnist"), "name": "tiny_gan", "path": "tiny_gan",
             "config": {"latent_dim": 4, "filters": 2, "critic_steps": 1, "gp_weight": 10.0},
             "train": {"epochs": 1, "batch_size": 20, "learning_rate": 1e-4, "seed": 0, "steps_per_epoch": 2}}
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(entry, workdir, verbose=0)
    card = training.train_and_evaluate(entry, workdir, resume=True, overrides={"epochs": 2}, verbose=0)
    assert card["training"]["epochs_completed"] == 2
    assert os.path.isfile(os.path.join(workdir, "export", "generator.weights.h5"))


@pytest.mark.parametrize("family", ["classifier", "aegan"])
def test_resume_is_bit_for_bit(family, tiny_data_dir, tmp_path):
    """Killed after epoch 1 and resumed == trained 2 epochs without a stop (data order, dropout and
    noise seeds, optimizer state): what `training` promises as exact resume."""
    import h5py
    import numpy as np

    entry = {**registry.get_entry(testing.register_tiny_entry(family)), "train": {
        "epochs": 2, "batch_size": 20, "learning_rate": 1e-3, "seed": 0, "steps_per_epoch": 3}}

    def weights(workdir):
        with h5py.File(os.path.join(workdir, training.CHECKPOINT)) as f:
            out = {}
            f.visititems(lambda k, v: out.update({k: v[()]}) if isinstance(v, h5py.Dataset) else None)
        return out

    straight, stopped = str(tmp_path / "straight"), str(tmp_path / "stopped")
    training.train_and_evaluate(entry, straight, verbose=0)
    training.train_and_evaluate(entry, stopped, overrides={"epochs": 1}, verbose=0)
    training.train_and_evaluate(entry, stopped, resume=True, verbose=0)
    a, b = weights(straight), weights(stopped)
    assert a.keys() == b.keys() and len(a) > 4
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_init_from_starts_from_another_entrys_weights(tiny_data_dir, tmp_path, monkeypatch):
    zoo = str(tmp_path / "zoo")
    monkeypatch.setenv(cards.MODELS_ENV, zoo)
    source = testing.register_tiny_entry("advtrain")
    training.train_and_evaluate(source, str(tmp_path / "source"), publish_dir=zoo,
                                overrides={"epochs": 1, "steps_per_epoch": 2}, verbose=0)
    # A learning rate of 0 keeps the first weights: the result must equal the source entry's.
    card = training.train_and_evaluate(source, str(tmp_path / "run"), verbose=0, overrides={
        "epochs": 1, "steps_per_epoch": 1, "learning_rate": 0.0, "init_from": source})
    assert card["training"]["init_from"]["name"] == source
    assert card["training"]["epochs_completed"] == 1
    published = registry.load(source).classifier.get_weights()
    trained = registry.get_family("advtrain").load(registry.get_entry(source), str(tmp_path / "run" / "export"))
    for a, b in zip(published, trained.classifier.get_weights()):
        assert (a == b).all()

    with pytest.raises(ValueError, match="same family and dataset"):
        training.train_and_evaluate(source, str(tmp_path / "bad"), verbose=0,
                                    overrides={"init_from": "classifier_a_mnist"})
