"""Choosing AE-GAN+rs inference settings on validation data (never the test set).

* detector threshold: the reconstruction-error score that flags ``fpr`` of
  clean validation images;
* search step size: the one with the best accuracy on validation images under
  a gray-box FGSM attack, searching every image.
"""

import numpy as np

from tfdefense import attacks, datasets, progress, registry, training
from tfdefense.aegan import defended
from tfdefense.purification import detection_scores, threshold_at_fpr

STEP_SIZES = (0.001, 0.003, 0.01, 0.03, 0.1)


def calibrate(name, folder=None, *, fpr=0.05, n=500, eps=0.3, step_sizes=STEP_SIZES, metric="l1", seed=0):
    """Measures and writes the ``inference`` settings into the card in ``folder``.

    Args:
        name: registered AE-GAN entry (e.g. "aegan_mnist").
        folder: the exported weights (default: ``saved_models/<name>``).
        fpr: target false-positive rate of the detector on clean validation images.
        n: validation images used.
        eps: FGSM budget for choosing the step size.

    Returns:
        The updated card.
    """
    entry = registry.get_entry(name)
    folder = folder or registry.weights_dir(name)
    card = registry.read_card(folder, verify=True)
    settings = defended.inference_settings(entry, {}, {})
    classifier = registry.load(settings["classifier"])
    encoder, decoder = defended.load_parts(entry, folder)
    x, y = datasets.load(entry["metadata"]["dataset"], "validation")
    rng = np.random.default_rng(seed)
    index = rng.choice(len(x), size=min(n, len(x)), replace=False)
    x, y = x[index], y[index]

    model = defended.build_defended(encoder, decoder, classifier, steps=0, threshold=None, metric=metric)
    clean_scores = np.asarray(detection_scores(x, model.reconstruct(x), metric))
    threshold = threshold_at_fpr(clean_scores, fpr)
    x_adv = attacks.fgsm(classifier, x, y, eps=eps)
    cheap = np.argmax(np.asarray(classifier(model.reconstruct(x_adv), training=False)), axis=1)
    table = {"0 (G(F(x)), no search)": round(float(np.mean(cheap == y)), 4)}
    for step_size in progress.bar(step_sizes, desc="step sizes"):
        model = defended.build_defended(encoder, decoder, classifier, steps=settings["steps"],
                                        step_size=step_size, threshold=None, metric=metric)
        table[str(step_size)] = round(float(np.mean(model.defend(x_adv)["label"] == y)), 4)
    best = max(step_sizes, key=lambda s: table[str(s)])
    card["inference"] = {"threshold": round(threshold, 6), "metric": metric, "step_size": best,
                         "steps": settings["steps"]}
    card["calibration"] = {"split": "validation", "n": int(len(x)), "seed": seed, "target_fpr": fpr,
                           "fgsm_eps": eps, "fgsm_accuracy_by_step_size": table}
    training.write_card(folder, card)
    return card
