"""Names -> pretrained models.

Entries are data: ``{"family", "config", "path", "metadata", "train"}``. Each
model family registers its entries and one ``Family`` that knows how to build,
train, save and load that kind of model; `load` has no name-specific branches.

Example:
    >>> import tfdefense
    >>> "classifier_a_mnist" in tfdefense.list_models()
    True
    >>> model = tfdefense.load("classifier_a_mnist")     # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from typing import Any, Callable, Optional

from tfdefense import datasets
from tfdefense.zoo import cards, presets, store
from tfdefense.zoo.cards import WeightsError
from tfdefense.defense.logits import logits_model

# Settings every defense with detectors takes, whatever its family: the
# detector thresholds (None switches a detector off).
DETECTOR_SETTINGS = ("threshold", "thresholds")


class UnknownModelError(KeyError):
    """An unknown model name; the message lists the available names."""

    def __str__(self):
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Family:
    """How one kind of model is built, trained, saved, loaded and calibrated.

    Attributes:
        name: family name used in entries.
        build_for_training: ``(entry, train_config) -> compiled keras.Model``.
        save: ``(model, entry, out_dir) -> list of weight file names written``.
        measure: ``(model, entry) -> dict`` of measured numbers for the card.
        load: ``(entry, weights_dir, **settings) -> DefendedClassifier``; it
            receives every declared inference setting, merged and checked.
        inference: the inference settings the family declares, with defaults
            (``tfdefense.load(name, **settings)`` and the CLI's ``--set``
            accept exactly these, plus the detector thresholds).
        tune: optional calibration hook for settings other than thresholds,
            ``(build, x, y, *, eps, seed, **options) -> (settings, table)``
            where ``build(**settings)`` loads the model with detectors off;
            ``settings["thresholds"]``, if present, replaces the
            false-positive-rate thresholds.
        calibration: defaults of `tfdefense.calibration.calibrate` for the
            family (``fpr``: target false-positive rate, ``n``: validation images).
        tiny: what makes an entry of the family tiny for the conformance test
            (``{"config": {...}, "inference": {...}}`` merged into an entry).
        warm_start: optional ``(model, entry, weights_dir) -> None`` that loads
            published weights into a freshly built training model (what the
            shipped files do not hold, a discriminator or optimizer state,
            starts fresh): `tfdefense train --warm_start` continues a
            schedule on a machine that lost its checkpoint.
        any_shape: the family builds for any (H, W, C) and number of classes
            (`user_entry` refuses other shapes for a family without it).
        adapt: optional ``(config, image_shape) -> config`` choosing the
            architecture a paper gives for that shape (MagNet's own CIFAR-10
            autoencoder for colour images).
    """

    name: str
    build_for_training: Callable[[dict, dict], Any]
    save: Callable[[Any, dict, str], list]
    measure: Callable[[Any, dict], dict]
    load: Callable[..., Any]
    inference: dict = dataclasses.field(default_factory=dict)
    tune: Optional[Callable[..., tuple]] = None
    calibration: dict = dataclasses.field(default_factory=lambda: {"fpr": 0.05, "n": 500})
    tiny: dict = dataclasses.field(default_factory=dict)
    warm_start: Optional[Callable[[Any, dict, str], None]] = None
    any_shape: bool = False
    adapt: Optional[Callable[[dict, tuple], dict]] = None


_FAMILIES: dict[str, Family] = {}
_ENTRIES: dict[str, dict] = {}


def register_family(family):
    if family.name in _FAMILIES:
        raise KeyError(f"Model family {family.name!r} is already registered.")
    _FAMILIES[family.name] = family


def register(name, entry):
    """Registers one entry; a duplicate name raises ``KeyError``."""
    if name in _ENTRIES:
        raise KeyError(f"Model {name!r} is already registered.")
    for key in ("family", "config", "path"):
        if key not in entry:
            raise ValueError(f"Entry {name!r} lacks the {key!r} field.")
    _ENTRIES[name] = dict(entry, name=name)


def register_presets(template, variants=presets.PAPER_DATASETS):
    """Registers one entry per variant of a family's preset template (`tfdefense.zoo.presets.expand`)."""
    for entry in presets.expand(template, variants):
        register(entry["name"], entry)


def list_models():
    """Names of every registered model, sorted.

    Example:
        >>> import tfdefense
        >>> tfdefense.list_models()[:2]
        ['classifier_a_fmnist', 'classifier_a_mnist']
    """
    return sorted(_ENTRIES)


def get_entry(name):
    """A deep copy of the entry for ``name``."""
    if not isinstance(name, str) or name not in _ENTRIES:
        raise UnknownModelError(
            f"Unknown model {name!r}. Available: {', '.join(list_models())}.")
    return copy.deepcopy(_ENTRIES[name])


def list_families():
    """Names of every registered family, sorted."""
    return sorted(_FAMILIES)


def get_family(name):
    if name not in _FAMILIES:
        raise KeyError(f"Unknown model family {name!r}; known: {', '.join(sorted(_FAMILIES))}.")
    return _FAMILIES[name]


def load(name, folder=None, dtype_policy=None, **overrides):
    """Loads a pretrained model by name, verifying its weights' sha256.

    The weights come from the first of: ``folder``, ``TFDEFENSE_MODELS_DIR``, the source
    checkout's ``saved_models/``, the user cache (``TFDEFENSE_HOME``), a download from
    ``TFDEFENSE_WEIGHTS_URL`` checked against the packaged card (see `tfdefense.store`).

    Args:
        name: a name from `list_models()`.
        folder: load the weights and card in this folder (e.g. a training run's
            ``export/``) instead of the published ones.
        dtype_policy: build the networks under this Keras dtype policy, e.g.
            "mixed_bfloat16" (float32 weights, bfloat16 compute: about 1.6x the
            speed here; `tfdefense bench` measures an entry's agreement with
            float32). "recommended": the card's ``measured.cost.recommended_policy``
            (what `tfdefense export` builds by default; float32 where bench measured none).
            Default: the global policy (float32).
        **overrides: inference settings the model's family declares (e.g.
            ``steps=`` for latent search), ``threshold=`` (one detector; None
            switches detection off) or ``thresholds={name: value}``.

    Returns:
        A ready `tfdefense.defended.DefendedClassifier` (for a bare
        classifier, one with no purifier and no detector; the keras model
        itself is its ``.classifier``); its ``.card`` is the card just verified.

    Raises:
        UnknownModelError: ``name`` is not registered (lists the names).
        WeightsError: the files are missing or their sha256 does not match.
        TypeError: a setting the family does not declare.
    """
    entry = get_entry(name)
    folder, card = store.resolve(entry["path"], folder)
    family = get_family(entry["family"])
    detector_overrides = {k: overrides.pop(k) for k in DETECTOR_SETTINGS if k in overrides}
    settings = settings_for(entry, folder, card, overrides)
    # The published settings resolved the same way, so a trained folder's own classifier.keras is no change.
    warn_uncalibrated(name, card, settings_for(entry, folder, card, {}), settings)
    if dtype_policy == "recommended":
        dtype_policy = recommended_policy(card)
    model = _under_policy(dtype_policy, lambda: family.load(entry, folder, **settings))
    apply_thresholds(model, card.get("inference", {}).get("thresholds", {}), **detector_overrides)
    model.card = card
    return model


def recommended_policy(card):
    """The dtype policy ``card`` recommends for serving: the ``recommended_policy`` that `tfdefense bench
    --accuracy_n` measured (the fastest within 0.5 points of float32's accuracy on float32-crafted inputs),
    else float32. `load` builds float32 unless asked: attacks differentiate it, and bfloat16 weakens them.

    Example:
        >>> recommended_policy({"measured": {"cost": {"recommended_policy": "mixed_bfloat16"}}})
        'mixed_bfloat16'
        >>> recommended_policy({})
        'float32'
    """
    return ((card or {}).get("measured", {}).get("cost", {}).get("recommended_policy")) or "float32"


def _under_policy(policy, build):
    """``build()`` with the global Keras dtype policy set to ``policy`` (the families build their layers
    under it), restored afterwards."""
    import keras

    if policy is None:
        return build()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return build()
    finally:
        keras.config.set_dtype_policy(previous)


def inference_settings(defaults, entry, card, overrides):
    """A family's inference settings: defaults < entry < measured card < caller.

    Raises:
        TypeError: an override the family does not declare, listing the declared ones.
    """
    unknown = set(overrides) - set(defaults)
    if unknown:
        known = f"choose from {sorted(defaults)}" if defaults else "it takes no inference settings"
        raise TypeError(f"Unknown inference settings {sorted(unknown)} for {entry.get('name', 'this model')}; "
                        f"{known}.")
    return {**defaults, **{k: v for k, v in {**entry.get("inference", {}), **card.get("inference", {})}.items()
                           if k in defaults}, **overrides}


def settings_for(entry, folder, card, overrides):
    """The inference settings ``family.load`` receives (`inference_settings`), with a classifier file named
    relative to the weights (a defense you trained ships ``classifier.keras`` beside them) made absolute."""
    settings = inference_settings(get_family(entry["family"]).inference, entry, card, overrides)
    classifier = settings.get("classifier")
    if isinstance(classifier, str) and classifier.endswith((".keras", ".h5")) and not os.path.isabs(classifier):
        settings["classifier"] = os.path.join(folder, classifier)
    return settings


def warn_uncalibrated(name, card, published, settings):
    """Warns when ``settings`` change inference settings under which the card's calibrated values
    (``card["inference"]``: a search step, detector thresholds) were measured: those values then
    no longer hold as calibrated. A 30-step search of defensegan_fmnist at its step 0.001, chosen for
    200 steps, reads 0.42 of 64 dev images right against >= 0.6 at step 0.003, and a shorter search
    leaves larger errors, so the detector can reject more clean images than the calibrated rate."""
    calibrated = card.get("inference") or {}
    changed = {k: v for k, v in settings.items() if published.get(k) != v}
    if not calibrated or not changed:
        return
    was = ", ".join(f"{k}={published.get(k)!r}" for k in sorted(changed))
    now = ", ".join(f"{k}={v!r}" for k, v in sorted(changed.items()))
    warnings.warn(f"{name}: the card's calibrated {', '.join(sorted(calibrated))} were measured with {was}; "
                  f"with {now} they are not recalibrated, so accuracy and the detectors' false-positive rate "
                  f"may differ from the card (a shorter search usually needs a larger step_size). Measure "
                  f"with `tfdefense evaluate {name} --set=...`.", UserWarning, stacklevel=3)


def apply_thresholds(model, calibrated, **overrides):
    """Sets a defense's detector thresholds: calibrated values, then ``threshold``/``thresholds``."""
    names = list(model.thresholds)
    if overrides and not names:
        raise TypeError(f"{model.name} has no detectors, so it takes no {sorted(overrides)}.")
    thresholds = {k: v for k, v in calibrated.items() if k in names}
    if "threshold" in overrides:
        value = overrides["threshold"]
        if value is not None and len(names) > 1:
            raise TypeError(f"{model.name} has detectors {names}; set each with thresholds={{name: value}}.")
        thresholds.update({n: value for n in names})
    thresholds.update(overrides.get("thresholds") or {})
    model.set_thresholds(thresholds)


def data_shape(entry):
    """(image_shape, num_classes) of an entry: its config's ``image_shape``/``num_classes`` where it states
    them, else its dataset's (MNIST and Fashion-MNIST: (28, 28, 1), 10)."""
    config = entry["config"]
    if "image_shape" in config:
        return tuple(int(d) for d in config["image_shape"]), int(config.get("num_classes", 10))
    return datasets.data_shape(entry["metadata"]["dataset"])


CLASSIFIER_FILE = cards.CLASSIFIER_FILE


def load_classifier(spec):
    """The bare keras classifier (of logits) that ``spec`` names: a registered entry, a saved Keras
    model (``.keras`` or ``.h5``), or a keras model itself. A classifier ending in a softmax comes back
    without it (`tfdefense.logits.logits_model`)."""
    import keras

    if isinstance(spec, keras.Model):
        return logits_model(spec)
    if isinstance(spec, str) and spec.endswith((".keras", ".h5")):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"classifier file {spec} does not exist.")
        try:
            model = keras.saving.load_model(spec, compile=False)
        except Exception as e:  # keras raises many kinds for a damaged or foreign file
            raise ValueError(f"could not load the classifier {spec} as a Keras model ({type(e).__name__}: "
                             f"{str(e)[:200]}).") from e
        return logits_model(model)
    if spec is None:
        raise ValueError("this defense needs a classifier: classifier=NAME, a .keras file or a keras model.")
    return load(spec).classifier


def user_entry(family, data, classifier=None, name=None, config=None):
    """An entry of ``family`` trained on ``data`` (a `tfdefense.datasets` name: ``tfds:NAME``, a
    ``.npz`` path, a folder, or one given to `datasets.register`).

    The family's MNIST entry is the template: its config, training schedule and inference settings,
    with ``image_shape`` and ``num_classes`` read from the data (the family's ``adapt`` hook may pick
    another architecture for that shape) and ``config`` applied last. ``classifier`` (a saved Keras
    model) guides the classifier-guided families and is copied into the trained folder, so the
    defense loads from that folder alone.
    """
    fam = get_family(family)
    templates = [e for e in _ENTRIES.values() if e["family"] == family and e["metadata"].get("dataset") == "mnist"]
    if not templates:
        raise ValueError(f"the {family!r} family has no MNIST entry to start from.")
    entry = copy.deepcopy(templates[0])
    image_shape, num_classes = datasets.data_shape(data)
    if not fam.any_shape and image_shape != datasets.MNIST_SHAPE:
        raise ValueError(f"the {family!r} family is built for 28x28x1 images only so far; {data} holds "
                         f"{image_shape} images. Shape-generic families: "
                         f"{', '.join(sorted(f.name for f in _FAMILIES.values() if f.any_shape))}.")
    source = os.path.abspath(data) if os.path.exists(data) else data
    entry_config = {**entry["config"], "image_shape": list(image_shape), "num_classes": num_classes}
    if fam.adapt:
        entry_config = fam.adapt(entry_config, image_shape)
    entry_config.update(config or {})
    name = name or f"{family}_{_slug(data)}"
    entry["train"] = {k: v for k, v in entry.get("train", {}).items() if k != "init_from"}  # MNIST weights
    entry.update(name=name, path=name, config=entry_config, _user=True,
                 metadata={"dataset": source, "description": f"{family} trained on {datasets.describe(data)}.",
                           "reported": {}, "reference": entry["metadata"].get("reference", "")})
    if classifier is not None:
        if not (isinstance(classifier, str) and os.path.isfile(classifier)):
            raise ValueError(f"--classifier must be a saved Keras model file; {classifier!r} is not a file.")
        entry["_classifier_file"] = os.path.abspath(classifier)
        # training and measuring use the user's file; the card names the copy shipped beside the weights
        entry["inference"] = dict(entry.get("inference", {}), classifier=entry["_classifier_file"])
        if "classifier" in entry_config:
            entry_config["classifier"] = entry["_classifier_file"]
    elif "classifier" in entry_config or "classifier" in entry.get("inference", {}):
        entry["inference"] = dict(entry.get("inference", {}), classifier=None)
        if "classifier" in entry_config:
            raise ValueError(f"the {family!r} family trains against the classifier it protects; pass "
                             "--classifier=PATH.keras (your saved Keras model).")
    return entry


def _slug(data):
    base = os.path.basename(os.path.normpath(data)) if os.path.exists(data) else data.split(":")[-1]
    return "".join(c if c.isalnum() else "_" for c in os.path.splitext(base)[0]).strip("_").lower() or "data"


def register_folder(folder):
    """Registers the defense trained into ``folder`` (its card names family, config and data) and
    returns its name, so `load`, evaluation, calibration and export take it like any entry."""
    card = cards.read_card(folder, verify=True)
    for key in ("name", "family", "architecture", "dataset"):
        if key not in card:
            raise WeightsError(f"{folder}/card.json lacks {key!r}; it is not a tfdefense training export.")
    name = card["name"]
    entry = {"family": card["family"], "config": card["architecture"], "path": os.path.abspath(folder),
             "inference": card.get("inference_defaults", {}),
             "metadata": {"dataset": card["dataset"], "description": card.get("description", ""),
                          "reported": card.get("reported", {}), "reference": card.get("reference", "")}}
    if name in _ENTRIES:
        if _ENTRIES[name]["family"] != entry["family"]:
            raise ValueError(f"{folder} holds a {entry['family']} model named {name!r}, but {name!r} is a "
                             f"registered {_ENTRIES[name]['family']} entry.")
        return name
    register(name, entry)
    return name


def load_folder(folder, **overrides):
    """`load` for a defense you trained: ``tfdefense.load_folder("runs/magnet_mine/export")``."""
    return load(register_folder(folder), folder, **overrides)
