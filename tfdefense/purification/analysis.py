"""Why a purifier hands the classifier a wrong image (see benchmarks/projection_check.py).

A purifier that projects onto a generator's range (Defense-GAN, AE-GAN+rs)
can fail an adversarial input x' of class y in three ways:

* **the search fell short**: the purified image P(x') is of another class, yet
  the purification of the clean image, P(x), is of class y and nearer to x'
  than P(x') is. A point of the right class closer to x' exists in the range
  and the search did not find it: a longer or better search can fix this.
* **the projection is of another class**: P(x') is nearer to x' than P(x) is.
  The objective itself (the nearest point of the range) prefers another class
  among the points we know of; a better search cannot fix this, a generator
  whose range keeps the classes apart (or a smaller eps) can.
* **the range lacks the image**: P(x) itself is read wrong, so even the clean
  image has no right-class reconstruction.

Classifiers trained apart from the protected one (B and C) read each wrong
purified image as a check of whether it is truly of another class (every
reader wrong) or the protected classifier's misreading (every reader right).
"""

import numpy as np

from tfdefense.evaluation import predict_logits


def labels(classifier, images):
    """Argmax labels of ``classifier`` on numpy ``images``."""
    return predict_logits(classifier, images, desc="labels").argmax(-1)


def reader_split(readers, images, y, wrong):
    """Of all images: the protected classifier is ``wrong`` and every / some but not every /
    no reader is right on ``images`` (the first is that classifier's fault, the last the image's)."""
    right = sum((labels(reader, images) == y).astype(int) for reader in readers)
    return {"every_reader_right": float(np.mean(wrong & (right == len(readers)))),
            "some_reader_right": float(np.mean(wrong & (right > 0) & (right < len(readers)))),
            "no_reader_right": float(np.mean(wrong & (right == 0)))}


def _squared_error(a, b):
    return ((a - b) ** 2).reshape(len(a), -1).mean(1)


def projection_check(model, x, y, clean, *, readers=(), seed=0, clean_out=None):
    """Splits the wrong labels of ``model`` on images ``x`` by the cause (see the module doc).

    Args:
        model: a defended model whose ``defend`` returns ``purified`` images.
        x: the (adversarial) inputs; ``y`` their true labels.
        clean: the clean images behind ``x``.
        readers: other classifiers (B, C) that read the wrong purified images.
        seed: the purifier's seed (the same for ``x`` and ``clean``).
        clean_out: ``model.defend(clean, seed=seed)`` if already computed (it is shared
            by every attack on the same images).

    Returns:
        A dict of fractions over ``x``: ``purified`` (right label on P(x')),
        ``clean_purified`` (right on P(x)), ``search_fell_short``,
        ``projection_other_class`` and ``range_lacks_image`` (the three causes; they sum
        to 1 - purified), the mean squared errors ``mse_found`` (P(x') to x') and
        ``mse_clean_purification`` (P(x) to x'), and with readers ``wrong_every_reader_right``,
        ``wrong_some_reader_right``, ``wrong_no_reader_right``.

    Example:
        >>> model = tfdefense.load("defensegan_mnist")                 # doctest: +SKIP
        >>> projection_check(model, x_adv, y, x)                       # doctest: +SKIP
    """
    out = model.defend(x, seed=seed, desc="purify inputs")
    clean_out = clean_out or model.defend(clean, seed=seed, desc="purify clean images")
    found, reference = out["purified"], clean_out["purified"]
    wrong, reference_right = out["label"] != y, clean_out["label"] == y
    mse_found, mse_reference = _squared_error(found, x), _squared_error(reference, x)
    result = {"n": int(len(x)), "purified": float(np.mean(~wrong)), "clean_purified": float(np.mean(reference_right)),
              "search_fell_short": float(np.mean(wrong & reference_right & (mse_reference < mse_found))),
              "projection_other_class": float(np.mean(wrong & reference_right & (mse_reference >= mse_found))),
              "range_lacks_image": float(np.mean(wrong & ~reference_right)),
              "mse_found": float(mse_found.mean()), "mse_clean_purification": float(mse_reference.mean())}
    if readers:
        result.update({f"wrong_{k}": v for k, v in reader_split(readers, found, y, wrong).items()})
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}


COLUMNS = [("input", "input"), ("purified", "right after purification"),
           ("clean_purified", "clean image right after purification"),
           ("search_fell_short", "wrong: search fell short"), ("projection_other_class", "wrong: projection of another class"),
           ("range_lacks_image", "wrong: clean image also wrong"), ("mse_found", "MSE found"),
           ("mse_clean_purification", "MSE of P(clean)"), ("wrong_every_reader_right", "wrong: B and C right"),
           ("wrong_some_reader_right", "wrong: one of B, C right"), ("wrong_no_reader_right", "wrong: neither right")]


def markdown_table(rows):
    """``projection_check`` rows (each with an ``input`` name) as a markdown table."""
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [f"{row[key]:.{4 if key.startswith('mse') else 3}f}" if isinstance(row.get(key), float)
                 else str(row.get(key, "-")) for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
