"""Why a purifier hands the classifier a wrong image (see benchmarks/projection_check.py).

A purifier that projects onto a generator's range (Defense-GAN, AE-GAN+rs)
can fail an adversarial input x' of class y in three ways. The right-class
points of the range we compare with are P(x), the purification of the clean
image, and (for a latent search) the search run on x' from P(x)'s code:

* **the search fell short**: P(x') is of another class, yet one of those
  right-class points is nearer to x' than P(x') is. The search missed a
  better minimum, so a better search might fix this (or find a still
  nearer point of another class).
* **the projection is of another class**: P(x') is nearer to x' than every
  right-class point we know of. The objective itself (the nearest point of
  the range) prefers another class; a better search cannot fix this, a
  generator whose range keeps the classes apart (or a smaller eps) can. The
  nearest right-class point of the range is unknown, so this share is an
  upper bound and the first a lower bound.
* **no right-class point is known**: both reference points are read wrong.

Classifiers trained apart from the protected one (B and C) read each wrong
purified image as a check of whether it is truly of another class (every
reader wrong) or the protected classifier's misreading (every reader right).
"""

import numpy as np
import tensorflow as tf

from tfdefense.utils import progress
from tfdefense.evaluation.core import predict_logits
from tfdefense.purification import search
from tfdefense.purification.purifier import LatentSearchPurifier


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


def _batches(n, batch_size, desc):
    return progress.bar(range(0, n, batch_size), desc=desc, unit="batch")


def purify(purifier, images, seed=0, batch_size=250, desc="purify"):
    """A `LatentSearchPurifier` over numpy ``images`` in batches: ``images`` and ``codes`` as numpy arrays."""
    parts = [purifier(images[i:i + batch_size], seed=seed) for i in _batches(len(images), batch_size, desc)]
    return {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in ("images", "codes")}


def clean_reference(model, clean, seed=0, batch_size=250):
    """The purifications of the clean images, shared by every attack on them.

    Returns:
        dict: ``images``, ``label`` (the protected classifier on them) and, for a latent-search
        `LatentSearchPurifier` (which is then run directly, so every image is searched), its ``codes``;
        other purifiers go through ``model.defend`` and have ``codes`` None.
    """
    purifier = model.purifier
    if not isinstance(purifier, LatentSearchPurifier):
        out = model.defend(clean, seed=seed, desc="purify clean images")
        return {"images": out["purified"], "label": out["label"], "codes": None}
    out = purify(purifier, clean, seed, batch_size, desc="purify clean images")
    return {"images": out["images"], "label": labels(model.classifier, out["images"]), "codes": out["codes"]}


def _search_from(purifier, x, codes, batch_size=250):
    """The purifier's own search on ``x`` started from ``codes`` (one start per image)."""
    run = tf.function(lambda images, z: search._search(
        purifier.decoder, images, z[None], purifier.steps, purifier.step_size, purifier.decay_every,
        purifier.decay, purifier.z_clip, purifier.momentum).images)
    return np.concatenate([np.asarray(run(tf.constant(x[i:i + batch_size]), tf.constant(codes[i:i + batch_size])))
                           for i in _batches(len(x), batch_size, "search from the clean codes")])


def projection_check(model, x, y, clean, *, readers=(), seed=0, reference=None):
    """Splits the wrong labels of ``model`` on images ``x`` by the cause (see the module doc).

    The right-class points that P(x') is compared with are P(x) and, for a latent-search
    `LatentSearchPurifier`, the same search run on x' from P(x)'s code (a right-class basin near x').
    They are points we know of, not the nearest right-class point of the range, so
    ``search_fell_short`` is a lower bound on the search's share.

    Args:
        model: a defended model whose ``defend`` returns ``purified`` images.
        x: the (adversarial) inputs; ``y`` their true labels.
        clean: the clean images behind ``x``.
        readers: other classifiers (B, C) that read the wrong purified images.
        seed: the purifier's seed (the same for ``x`` and ``clean``).
        reference: ``clean_reference(model, clean, seed)`` if already computed (it is shared
            by every attack on the same images).

    Returns:
        A dict of fractions over ``x``: ``purified`` (the pipeline's label on x' is right),
        ``clean_purified`` (right on P(x)), ``from_clean_code`` (right on the search from P(x)'s
        code, latent search only), the three causes ``search_fell_short``,
        ``projection_other_class`` and ``range_lacks_image`` (they sum to 1 - purified), the mean
        squared distances to x' of P(x') (``mse_found``), P(x) (``mse_clean_purification``) and the
        search from P(x)'s code (``mse_from_clean_code``),
        and with readers ``wrong_every_reader_right``, ``wrong_some_reader_right``,
        ``wrong_no_reader_right``.

    Example:
        >>> model = tfdefense.load("defensegan_mnist")                 # doctest: +SKIP
        >>> projection_check(model, x_adv, y, x)                       # doctest: +SKIP
    """
    if reference is None:
        reference = clean_reference(model, clean, seed)
    out = model.defend(x, seed=seed, desc="purify inputs")
    wrong, mse_found = out["label"] != y, _squared_error(out["purified"], x)
    mse_reference = _squared_error(reference["images"], x)
    candidates = [(reference["label"] == y, mse_reference)]
    result = {"n": int(len(x)), "purified": float(np.mean(~wrong)), "clean_purified": float(np.mean(candidates[0][0]))}
    if reference["codes"] is not None:
        refined = _search_from(model.purifier, x, reference["codes"])
        candidates.append((labels(model.classifier, refined) == y, _squared_error(refined, x)))
        result["from_clean_code"] = float(np.mean(candidates[1][0]))
        result["mse_from_clean_code"] = float(candidates[1][1].mean())
    some_right = np.any([right for right, _ in candidates], axis=0)
    nearer_right = np.any([right & (mse < mse_found) for right, mse in candidates], axis=0)
    result.update({"search_fell_short": float(np.mean(wrong & nearer_right)),
                   "projection_other_class": float(np.mean(wrong & some_right & ~nearer_right)),
                   "range_lacks_image": float(np.mean(wrong & ~some_right)),
                   "mse_found": float(mse_found.mean()), "mse_clean_purification": float(mse_reference.mean())})
    if readers:
        result.update({f"wrong_{k}": v for k, v in reader_split(readers, out["purified"], y, wrong).items()})
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}


COLUMNS = [("input", "input"), ("purified", "right after purification"), ("clean_purified", "P(clean) right"),
           ("from_clean_code", "search from P(clean)'s code right"), ("search_fell_short", "wrong: search fell short"),
           ("projection_other_class", "wrong: projection of another class"),
           ("range_lacks_image", "wrong: no right-class point known"), ("mse_found", "MSE found"),
           ("mse_clean_purification", "MSE of P(clean)"), ("mse_from_clean_code", "MSE from P(clean)'s code"),
           ("wrong_every_reader_right", "wrong: B and C right"),
           ("wrong_some_reader_right", "wrong: one of B, C right"), ("wrong_no_reader_right", "wrong: neither right")]


def markdown_table(rows):
    """``projection_check`` rows (each with an ``input`` name) as a markdown table."""
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [f"{row[key]:.{4 if key.startswith('mse') else 3}f}" if isinstance(row.get(key), float)
                 else str(row.get(key, "-")) for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def card_analysis(result, report):
    """The card's ``analysis`` item for a `benchmarks/projection_check.py` result stored at ``report``
    (a path relative to the card's folder)."""
    settings = result.get("settings", "shipped")
    step = "" if settings == "shipped" else f", search step {settings['step_size']} instead of the shipped one"
    setting = (f"Why purified inputs are read wrong{step}: {result['split']} split, n = {result['n']}, "
               f"seed {result['seed']}, eps {result['eps']}, gray-box attacks crafted on classifier A; fractions "
               "of all inputs. P(clean) is the purifier run on the clean image (a latent search always searches: "
               "no detector bypass); 'search fell short' means P(clean), or the same search run on the input from "
               "P(clean)'s code, is of the right class and nearer to the input than what the pipeline found "
               "(`python benchmarks/projection_check.py`; the causes are defined in "
               "`tfdefense.evaluation.analysis`).")
    return {"setting": setting, "table": markdown_table(result["rows"]), "report": report}
