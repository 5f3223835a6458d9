"""Every registered family through the defense contract, on tiny shapes.

A family passes when a tiny entry of it can be trained one step, saved and
loaded back through `tfdefense.load` (sha256 and card included), defends with
the standard output schema, gives the white-box attack a non-zero gradient of
the kind it declares (exact, or BPDA through its declared surrogate), and
exports to a SavedModel that the TF1 session loader (`saved_model_cli run`,
what TF Serving uses) runs in a process that cannot import tfdefense, with
the same logits, and continues its schedule from the published weights on
a machine without the checkpoint (``warm_start``). A new family is covered
by registering it.
"""

import contextlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfdefense
from tfdefense import testing
from tfdefense.evaluation import threats
from tfdefense.zoo import cards, export, registry, store, training
from tfdefense.defense.defended import OUTPUTS

# saved_model_cli in a fresh interpreter where tfdefense cannot be imported: what TF Serving has.
CLI = """
import sys; sys.modules["tfdefense"] = None
from tensorflow.python.tools import saved_model_cli
sys.argv = ["saved_model_cli"] + sys.argv[1:]
saved_model_cli.main()
"""


def _trained_tiny(family, tmp_path, monkeypatch):
    """A tiny entry of ``family`` trained one step and published under a temporary models folder."""
    name = testing.register_tiny_entry(family)
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv(cards.MODELS_ENV, str(models))
    training.train_and_evaluate(name, str(tmp_path / "run"), publish_dir=str(models), verbose=0,
                                overrides={"epochs": 1, "steps_per_epoch": 1, "batch_size": 8,
                                           "dtype_policy": "float32"})
    return name


@pytest.mark.parametrize("family", registry.list_families())
def test_family_fills_in_the_contract(family, tiny_data_dir, tmp_path, monkeypatch):
    keras.utils.set_random_seed(0)
    name = _trained_tiny(family, tmp_path, monkeypatch)
    model = tfdefense.load(name)
    assert isinstance(model, tfdefense.DefendedClassifier) and model.name == name
    assert store.find(name)[0] == cards.MODELS_ENV and store.card(name)["files"]
    # Tiny thresholds so every detector is exercised.
    registry.apply_thresholds(model, {d: 1e-3 for d in model.thresholds})

    x, y = testing.blob_images(4, seed=1)
    out = model.defend(x)
    assert set(out) == set(OUTPUTS)
    assert out["logits"].shape == (4, 10) and out["purified"].shape == x.shape
    assert out["score"].shape == out["is_adversarial"].shape == out["rejected"].shape == (4,)
    np.testing.assert_array_equal(out["label"], out["logits"].argmax(-1))

    _check_white_box_gradient(model, x, y)
    _check_export(model, x, tmp_path)
    _check_warm_start(name, tmp_path)


SHAPE_GENERIC = [f for f in registry.list_families() if registry.get_family(f).any_shape]


@pytest.mark.parametrize("family", SHAPE_GENERIC)
def test_shape_generic_family_on_colour_images(family, tmp_path):
    """A shape-generic family trained on your 32x32x3 data for your softmax classifier: one step, loaded from
    its folder, the `defend` schema, the declared white-box gradient and the served graph, in that shape."""
    keras.utils.set_random_seed(0)
    data, classifier = testing.user_data(str(tmp_path), (32, 32, 3), classes=3)
    guided = "classifier" in registry.get_family(family).inference
    tiny = registry.get_family(family).tiny
    entry = registry.user_entry(family, data, classifier=classifier if guided else None, name=f"colour_{family}",
                                config=tiny.get("config"))
    entry["inference"] = {**entry.get("inference", {}), **tiny.get("inference", {})}
    assert entry["config"]["image_shape"] == [32, 32, 3] and entry["config"]["num_classes"] == 3
    card = training.train_and_evaluate(entry, str(tmp_path / "run"), verbose=0,
                                       overrides={"epochs": 1, "steps_per_epoch": 1, "batch_size": 8,
                                                  "dtype_policy": "float32"})
    assert card["image_shape"] == [32, 32, 3] and card["num_classes"] == 3
    with pytest.warns(UserWarning, match="softmax") if guided else contextlib.nullcontext():
        model = tfdefense.load_folder(str(tmp_path / "run" / "export"))
    assert model.image_shape == (32, 32, 3) and model.num_classes == 3
    x, y = testing.colour_images(4, (32, 32, 3), 3, seed=1)
    x = x.astype(np.float32) / 255
    out = model.defend(x)
    assert out["logits"].shape == (4, 3) and out["purified"].shape == x.shape
    with pytest.raises(ValueError, match=r"\[N, 32, 32, 3\]; got \(4, 28, 28, 1\)"):
        model.defend(np.zeros((4, 28, 28, 1), np.float32))
    _check_white_box_gradient(model, x, y)
    _check_export(model, x, tmp_path)


def _check_white_box_gradient(model, x, y):
    """The white-box gradient is non-zero and is the kind the purifier declares."""
    kind = threats.gradient_kind(model)
    purifier = model.purifier
    assert kind == ("exact" if purifier is None or purifier.differentiable else f"bpda:{purifier.surrogate_name}")
    x = tf.constant(x)

    def ce(logits):
        return tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = ce(threats.white_box_fn(model, eot=1)(x))
    grad = tape.gradient(loss, x).numpy()
    assert np.abs(grad).sum() > 0, f"{model.name}: zero white-box gradient"
    if kind == "exact":
        with tf.GradientTape() as tape:  # the model itself, differentiated by autodiff
            tape.watch(x)
            loss = ce(model(x))
        expected = tape.gradient(loss, x).numpy()
    else:  # BPDA: the classifier's gradient at the purified images, pulled back through the surrogate
        purified = tf.constant(model.pipeline(x, 0)["purified"])
        with tf.GradientTape() as tape:
            tape.watch(purified)
            loss = ce(model.classifier(purified, training=False))
        upstream = tape.gradient(loss, purified)
        with tf.GradientTape() as tape:
            tape.watch(x)
            approx = purifier.surrogate(x)
        expected = tape.gradient(approx, x, output_gradients=upstream).numpy()
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def _check_export(model, x, tmp_path):
    path = export.export(model, str(tmp_path / "serving"), model.name)
    np.save(tmp_path / "x.npy", x)
    outdir = tmp_path / "cli_out"
    proc = subprocess.run([sys.executable, "-c", CLI, "run", "--dir", path, "--tag_set", "serve",
                           "--signature_def", "serving_default", "--inputs", f"images={tmp_path / 'x.npy'}",
                           "--outdir", str(outdir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {f[:-4] for f in os.listdir(outdir)} == set(OUTPUTS)
    np.testing.assert_allclose(np.load(outdir / "logits.npy"), model.defend(x)["logits"], atol=1e-4)


def _check_warm_start(name, tmp_path):
    """A machine without the checkpoint continues the schedule from the published weights."""
    entry = registry.get_entry(name)
    family = registry.get_family(entry["family"])
    if not family.build_for_training(entry, training.train_config(entry)).weights:
        return  # nothing trained (a composition of published entries): nothing to continue
    assert family.warm_start is not None, f"the {family.name} family has no warm_start hook"
    settings = {"epochs": 2, "steps_per_epoch": 1, "batch_size": 8, "dtype_policy": "float32"}
    keras.utils.set_random_seed(0)
    fresh = family.build_for_training(entry, training.train_config(entry, settings))
    keras.utils.set_random_seed(0)
    warm = family.build_for_training(entry, training.train_config(entry, settings))
    family.warm_start(warm, entry, store.resolve(name)[0])
    assert any(not np.array_equal(a, b) for a, b in zip(fresh.get_weights(), warm.get_weights())), \
        f"{family.name}: warm_start loaded nothing"
    card = training.train_and_evaluate(name, str(tmp_path / "warm"), warm_start=True, verbose=0, overrides=settings)
    assert card["training"]["warm_start"]["epochs_completed"] == 1 and card["training"]["epochs_completed"] == 2


def test_families_never_import_each_other():
    """A family folder imports shared modules only (tests excepted), so adding or removing one touches no other."""
    import ast

    root = os.path.join(os.path.dirname(os.path.abspath(tfdefense.__file__)), "families")
    folders = {d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "__init__.py"))
               and "register_family(" in open(os.path.join(root, d, "__init__.py")).read()}
    assert {"aegan", "apegan", "advtrain", "classifiers", "defensegan", "magnet"} <= folders
    for folder in folders:
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            for fname in files:
                if not fname.endswith(".py") or fname.endswith("_test.py"):
                    continue
                tree = ast.parse(open(os.path.join(dirpath, fname)).read())
                for node in ast.walk(tree):
                    names = []
                    if isinstance(node, ast.ImportFrom) and node.module:
                        names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                    elif isinstance(node, ast.Import):
                        names = [a.name for a in node.names]
                    for name in names:
                        parts = name.split(".")
                        other = parts[1] if len(parts) > 1 and parts[0] == "tfdefense" else None
                        assert other not in folders - {folder}, f"{folder}/{fname} imports the {other} family"
