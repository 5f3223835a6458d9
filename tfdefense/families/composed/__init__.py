"""Purifiers in front of a robust classifier: one entry's purifier and detectors, another's classifier.

Does a purifier in front of an adversarially trained classifier beat the robust classifier alone? An
entry of this family answers it for one pair: ``composed_apegan_advtrain_mnist`` is APE-GAN's generator
in front of PGD-trained classifier A. It has no weights of its own. Its one file, ``parts.json``, holds
the sha256 of every weight file of its parts as they were when it was assembled. Loading it loads both
parts through the store, each checked against its own card, and refuses parts that were re-published
since. The pipeline is plain `DefendedClassifier` composition, so every threat model attacks it end to
end as its purifier declares (APE-GAN and MagNet: exact gradients; DiffPure: exact gradients with EOT).

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("composed_apegan_advtrain_mnist")      # doctest: +SKIP
    >>> tfdefense.load("composed_apegan_advtrain_mnist", classifier="classifier_a_mnist")  # doctest: +SKIP

Reference:
    Shen et al. 2017, Section 5 and Tables 7-9 (APE-GAN followed by an adversarially trained model);
    Madry et al. 2018 (arXiv:1706.06083).
"""

import os

import keras

from tfdefense.defense.defended import DefendedClassifier
from tfdefense.zoo import cards, registry, store
from tfdefense.families.composed import presets
from tfdefense.families.composed.presets import ROBUST

PARTS = "parts.json"


def _build_for_training(entry, config):
    """Nothing to train: the parts are trained entries. `tfdefense train` assembles the folder."""
    return keras.Sequential([keras.Input((1,)), keras.layers.Identity()], name="assembly")


def _parts(entry):
    return [entry["config"]["purifier_from"], entry.get("inference", {}).get("classifier", ROBUST)]


def _save(model, entry, out_dir):
    parts = {}
    for part in _parts(entry):
        _, card = store.resolve(part)  # verified: the composition records weights that loaded
        parts[part] = card["files"]
    cards.write_json(os.path.join(out_dir, PARTS), parts)
    return [PARTS]


def _measure(model, entry):
    return {}


def _load(entry, folder, classifier):
    recorded = cards.read_json(os.path.join(folder, PARTS))
    purifier_from = entry["config"]["purifier_from"]
    for part in (purifier_from, classifier):
        if part in recorded and store.card(part)["files"] != recorded[part]:
            raise cards.WeightsError(f"{entry['name']} was assembled from other weights of {part} than those "
                                     f"published now; re-assemble it: tfdefense train {entry['name']} --publish.")
    source = registry.load(purifier_from)
    return DefendedClassifier(registry.load_classifier(classifier), source.purifier, source.detectors,
                              name=entry["name"])


registry.register_family(registry.Family("composed", _build_for_training, _save, _measure, _load,
                                         inference={"classifier": ROBUST},
                                         tiny={"config": {"purifier_from": "apegan_mnist"}}))
registry.register_presets(presets.TEMPLATE, presets.VARIANTS)
