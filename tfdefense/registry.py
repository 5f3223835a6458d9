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
import warnings
from typing import Any, Callable, Optional

from tfdefense import datasets, store
from tfdefense.cards import WeightsError  # noqa: F401  (raised by load)
from tfdefense.defended import inference_settings

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


def load(name, folder=None, **overrides):
    """Loads a pretrained model by name, verifying its weights' sha256.

    The weights come from the first of: ``folder``, ``TFDEFENSE_MODELS_DIR``, the source
    checkout's ``saved_models/``, the user cache (``TFDEFENSE_HOME``), a download from
    ``TFDEFENSE_WEIGHTS_URL`` checked against the packaged card (see `tfdefense.store`).

    Args:
        name: a name from `list_models()`.
        folder: load the weights and card in this folder (e.g. a training run's
            ``export/``) instead of the published ones.
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
    settings = inference_settings(family.inference, entry, card, overrides)
    warn_uncalibrated(name, card, inference_settings(family.inference, entry, card, {}), settings)
    model = family.load(entry, folder, **settings)
    apply_thresholds(model, card.get("inference", {}).get("thresholds", {}), **detector_overrides)
    model.card = card
    return model


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


def load_classifier(name):
    """The bare keras classifier of a registered entry (for building other defenses on it)."""
    return load(name).classifier
