"""Choosing a purifier's inference settings on validation data (never the test set).

* detector threshold: the score that flags ``fpr`` of clean validation
  images (AE-GAN: reconstruction error against G(F(x)); Defense-GAN/INC: the
  final search error);
* search step size: the one with the best accuracy on validation images under
  a gray-box FGSM attack, searching every image.

Works for any family whose `load` accepts ``threshold`` and ``step_size``.

Example:
    >>> from tfdefense import calibration
    >>> card = calibration.calibrate("aegan_mnist")     # doctest: +SKIP
"""

import numpy as np

from tfdefense import attacks, datasets, progress, registry, training
from tfdefense.purification import threshold_at_fpr

STEP_SIZES = (0.001, 0.003, 0.01, 0.03, 0.1)


def calibrate(name, folder=None, *, fpr=0.05, n=500, eps=0.3, step_sizes=STEP_SIZES, seed=0):
    """Measures and writes the ``inference`` settings into the card in ``folder``.

    Args:
        name: registered defense (e.g. "aegan_mnist").
        folder: the exported weights (default: ``saved_models/<name>``).
        fpr: target false-positive rate of the detector on clean validation images.
        n: validation images used.
        eps: FGSM budget for choosing the step size.
        step_sizes: candidates.
        seed: chooses the validation images.

    Returns:
        The updated card.
    """
    entry = registry.get_entry(name)
    family = registry.get_family(entry["family"])
    folder = folder or registry.weights_dir(name)
    card = registry.read_card(folder, verify=True)
    x, y = datasets.load(entry["metadata"]["dataset"], "validation")
    index = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    x, y = x[index], y[index]

    def build(**settings):
        return family.load(entry, folder, threshold=None, **settings)

    model = build(step_size=step_sizes[0])
    x_adv = attacks.fgsm(model.classifier, x, y, eps=eps)
    table = {}
    if model.encoder is not None:
        cheap = np.argmax(np.asarray(model.classifier(model.reconstruct(x_adv), training=False)), axis=1)
        table["0 (G(F(x)), no search)"] = round(float(np.mean(cheap == y)), 4)
    for step_size in progress.bar(step_sizes, desc="step sizes"):
        table[str(step_size)] = round(float(np.mean(build(step_size=step_size).defend(x_adv)["label"] == y)), 4)
    best = max(step_sizes, key=lambda s: table[str(s)])
    threshold = threshold_at_fpr(build(step_size=best).defend(x)["score"], fpr)
    card["inference"] = {**card.get("inference", {}), "threshold": round(threshold, 6), "step_size": best}
    card["calibration"] = {"split": "validation", "n": int(len(x)), "seed": seed, "target_fpr": fpr,
                           "fgsm_eps": eps, "fgsm_accuracy_by_step_size": table}
    training.write_card(folder, card)
    return card
