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
import hashlib
import json
import os
from typing import Any, Callable

CARD = "model_card.json"
MODELS_ENV = "TFDEFENSE_MODELS_DIR"


class UnknownModelError(KeyError):
    """An unknown model name; the message lists the available names."""

    def __str__(self):
        return str(self.args[0])


class WeightsError(RuntimeError):
    """Pretrained files are missing or do not match their model card."""


@dataclasses.dataclass(frozen=True)
class Family:
    """How one kind of model is built, trained, saved and loaded.

    Attributes:
        name: family name used in entries.
        build_for_training: ``(entry) -> compiled keras.Model``.
        save: ``(model, entry, out_dir) -> list of weight file names written``.
        measure: ``(model, entry) -> dict`` of measured numbers for the card.
        load: ``(entry, weights_dir, **overrides) -> ready model``.
    """

    name: str
    build_for_training: Callable[[dict], Any]
    save: Callable[[Any, dict, str], list]
    measure: Callable[[Any, dict], dict]
    load: Callable[..., Any]


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


def get_family(name):
    if name not in _FAMILIES:
        raise KeyError(f"Unknown model family {name!r}; known: {', '.join(sorted(_FAMILIES))}.")
    return _FAMILIES[name]


def models_dir():
    """Folder holding ``<name>/`` pretrained entries (``TFDEFENSE_MODELS_DIR`` overrides)."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")


def weights_dir(name):
    return os.path.join(models_dir(), get_entry(name)["path"])


def load(name, **overrides):
    """Loads a pretrained model by name, verifying its weights' sha256.

    Args:
        name: a name from `list_models()`.
        **overrides: family-specific inference settings (e.g. ``steps=`` for
            latent-search defenses).

    Returns:
        The ready model (a ``keras.Model``).

    Raises:
        UnknownModelError: ``name`` is not registered (lists the names).
        WeightsError: the files are missing or their sha256 does not match.
    """
    entry = get_entry(name)
    folder = weights_dir(name)
    read_card(folder, verify=True)
    return get_family(entry["family"]).load(entry, folder, **overrides)


def read_card(folder, verify=True):
    """Reads ``model_card.json`` in ``folder``, checking each listed file's sha256."""
    path = os.path.join(folder, CARD)
    if not os.path.isfile(path):
        name = os.path.basename(os.path.normpath(folder))
        raise WeightsError(f"No pretrained weights at {folder} ({CARD} missing). Train them with "
                           f"`tfdefense train {name} --publish` or set {MODELS_ENV}.")
    with open(path) as f:
        card = json.load(f)
    if verify:
        for fname, digest in card.get("files", {}).items():
            fpath = os.path.join(folder, fname)
            if not os.path.isfile(fpath):
                raise WeightsError(f"{fpath} is listed in {path} but missing.")
            found = sha256(fpath)
            if found != digest:
                raise WeightsError(f"{fpath} has sha256 {found}, but {CARD} expects {digest}: "
                                   "the file is corrupt or was replaced; refusing to load it.")
    return card


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
