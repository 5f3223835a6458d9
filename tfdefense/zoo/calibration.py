"""Choosing a defense's inference settings on validation data (never the test set).

* detector thresholds, for any defense: each detector's threshold is the
  score that flags a fraction ``fpr`` of clean validation images (the
  family declares its target: 5% for AE-GAN+rs and INC, 0.1% for MagNet);
* other settings, through the family's ``tune`` hook (which may return the
  thresholds too, when its detector's levels are not one false-positive
  rate: FM-Defense's per-code resistance levels and distance); the latent-search
  families use `tune_step_size`: the step size with the best worst-case
  accuracy on validation images over gray-box attacks, searching every image.

The result goes into the card's ``inference`` section, where `tfdefense.load`
reads it.

Example:
    >>> from tfdefense import calibration
    >>> card = calibration.calibrate("aegan_mnist")     # doctest: +SKIP
"""

import numpy as np

from tfdefense import datasets
from tfdefense.evaluation import attacks
from tfdefense.utils import batching, progress
from tfdefense.zoo import cards, registry, store
from tfdefense.purification import threshold_at_fpr

STEP_SIZES = (0.001, 0.003, 0.01, 0.03, 0.1)


def calibrate(name, folder=None, *, fpr=None, n=None, eps=0.3, seed=0, **options):
    """Measures and writes the ``inference`` settings into the card in ``folder``.

    Args:
        name: registered defense (e.g. "aegan_mnist").
        folder: a folder with the weights and the card to update (default: the local store
            `tfdefense.store` resolves, e.g. the checkout's ``saved_models/<name>``).
        fpr: target false-positive rate of each detector on clean validation
            images (default: the entry's ``calibration``, else the family's).
        n: validation images used (default: as ``fpr``; None is all of them).
        eps: attack budget for the family's tuning hook.
        seed: chooses the validation images.
        **options: passed to the family's tuning hook (e.g. ``step_sizes``).

    Returns:
        The updated card.
    """
    entry = registry.get_entry(name)
    family = registry.get_family(entry["family"])
    defaults = {**family.calibration, **entry.get("calibration", {})}  # an entry may override its family
    fpr = defaults.get("fpr", 0.05) if fpr is None else fpr
    n = defaults.get("n") if n is None else n
    folder, card = store.resolve(name, folder)
    writable = store.card_folder(name, folder)  # refuses before measuring when the card is read-only
    x, y = datasets.load(entry["metadata"]["dataset"], "validation")
    if n is not None and n < len(x):
        index = np.random.default_rng(seed).choice(len(x), size=n, replace=False)
        x, y = x[index], y[index]

    def build(**settings):
        model = family.load(entry, folder, **registry.settings_for(entry, folder, card, settings))
        registry.apply_thresholds(model, {}, **({"threshold": None} if model.thresholds else {}))
        return model

    settings, table = {}, {}
    if family.tune is not None:
        settings, table = family.tune(build, x, y, eps=eps, seed=seed, **options)
    elif options:
        raise TypeError(f"{name} has no tuning settings; got {sorted(options)}.")
    thresholds = settings.pop("thresholds", None)  # a hook that sets its detector's levels itself (FM-Defense)
    if thresholds is None:
        model = build(**settings)
        thresholds = {d: round(threshold_at_fpr(s, fpr), 6) for d, s in detector_scores(model, x, seed).items()}

    def change(card):  # on the card as it is now: an evaluation may have written to it meanwhile
        inference = {k: v for k, v in card.get("inference", {}).items() if k != "threshold"}
        card["inference"] = {**inference, **settings, "thresholds": thresholds}
        card["calibration"] = {"split": "validation", "n": int(len(x)), "seed": seed, "target_fpr": fpr,
                               **({"eps": eps, "tuning": table} if table else {})}
    card = cards.update_card(writable, change)
    return card


def detector_scores(model, x, seed=0, batch_size=256):
    """{detector name: numpy scores of ``x``} for every detector of a defense."""
    scores = batching.concat_map(lambda b: model.detector_scores(b, seed), x, batch_size)
    return {name: scores[name] for name in model.thresholds}


def tune_step_size(build, x, y, *, eps=0.3, seed=0, step_sizes=STEP_SIZES, attacks_used=("fgsm", "pgd")):
    """The latent-search step size with the best worst-case accuracy over gray-box attacks.

    Args:
        build: ``build(**settings) -> model`` with detectors off (every image searched).
        x, y: validation images and labels.
        eps: Linf budget of the attacks.
        step_sizes: candidates.
        attacks_used: gray-box attacks (names in `tfdefense.evaluation.attacks.ATTACKS`) whose
            minimum accuracy is maximised. FGSM alone once chose a step that cost
            aegan_fmnist 20 points of gray-box PGD, so both by default.

    Returns:
        ``({"step_size": best}, table)`` with the accuracy per attack and step size.
    """
    model = build(step_size=step_sizes[0])
    adversarial = gray_box_examples(model, x, y, eps=eps, seed=seed, attacks_used=attacks_used)
    table = {a: {} for a in attacks_used}
    surrogate = model.purifier.surrogate_name
    if surrogate != "identity":  # a cheap path worth comparing: the surrogate alone, no search
        label = f"0 ({'G(F(x))' if surrogate == 'gfx' else surrogate}, no search)"
        for a, x_adv in adversarial.items():
            cheap = np.argmax(np.asarray(model.classifier(model.purifier.surrogate(x_adv), training=False)), axis=1)
            table[a][label] = round(float(np.mean(cheap == y)), 4)
    return best_setting(build, y, "step_size", step_sizes, adversarial, table)


def gray_box_examples(model, x, y, *, eps, seed, attacks_used):
    """{attack: adversarial images} crafted on the bare classifier of ``model`` (gray-box)."""
    return {a: attacks.get(a)(model.classifier, x, y, eps=eps, **({"seed": seed} if attacks.get(a).seeded else {}))
            for a in attacks_used}


def best_setting(build, y, key, values, inputs, table=None):
    """The value of inference setting ``key`` whose worst accuracy over ``inputs`` ({row: images}, clean
    images included where clean accuracy must count) is highest; ``(settings, table)`` with every accuracy.
    Rows of ``table`` under other keys (a reference such as "no search") are reported, not maximised."""
    table = table or {}
    for row in inputs:
        table.setdefault(row, {})
    for value in progress.bar(values, desc=key):
        candidate = build(**{key: value})
        for row, images in inputs.items():
            table[row][str(value)] = round(float(np.mean(candidate.defend(images)["label"] == y)), 4)
    best = max(values, key=lambda v: min(table[row][str(v)] for row in inputs))
    return {key: best}, table
