"""Where AE-GAN+rs loses its gray-box points (see benchmarks/aegan_decompose.py).

A gray-box error of the shipped pipeline can come from four places: the
detector letting the input bypass the search (the bypass path is G(F(x))),
the encoder-decoder reconstruction G(F(x_adv)) before any search, what the
L-step search adds or removes, and classifier A misreading a purified image
that is still of the right class. `decompose` measures each on the same
images; classifiers B and C, trained apart from A, stand in for a human
reader of the purified images.
"""

import numpy as np

from tfdefense.utils import batching
from tfdefense.evaluation.analysis import labels, purify, reader_split


def _surrogate(purifier, images, batch_size=500):
    return batching.concat_map(purifier.surrogate, images, batch_size)


def decompose(model, classifier, x, y, *, searches=None, readers=(), clean=None, seed=0):
    """The accuracy of each stage of an AE-GAN+rs pipeline on images ``x`` (labels ``y``).

    Args:
        model: the defended model as shipped (detector, purifier, classifier).
        classifier: the classifier the defense protects (classifier A).
        x, y: the inputs (clean or adversarial) and their true labels.
        searches: {name: purifier} of searches to measure on ``x`` (e.g. the model's purifier
            loaded at each step size: ``tfdefense.load(name, step_size=s).purifier``).
        readers: other classifiers (B, C) that read G(F(x)) as a check of whether a wrong
            label is the reconstruction's fault (every reader wrong too) or A's (a reader right).
        clean: the clean images behind ``x``, to measure how far G(F(x)) moved from G(F(clean)).
        seed: the purifier's seed.

    Returns:
        A dict of fractions over ``x``: ``undefended`` (A on x), ``flagged`` (the detector
        sends x to the search), ``shipped`` (the pipeline's final label is right), ``gfx``
        (A on G(F(x)), no search), ``search`` {name: A on that search's result},
        ``gfx_wrong_every_reader_right``, ``gfx_wrong_some_reader_right`` and
        ``gfx_wrong_no_reader_right`` (of all images: A is wrong on G(F(x)) and every / some but
        not every / no reader is right: the first is A's fault, the last the reconstruction's), and, with ``clean``,
        ``gfx_l2_to_clean_reconstruction`` (mean L2 from G(F(clean))).

    Example:
        >>> model = tfdefense.load("aegan_mnist")                            # doctest: +SKIP
        >>> decompose(model, model.classifier, x_adv, y)   # doctest: +SKIP
    """
    out = model.defend(x, seed=seed)
    gfx = _surrogate(model.purifier, x)
    gfx_label = labels(classifier, gfx)
    result = {"n": int(len(x)), "undefended": float(np.mean(labels(classifier, x) == y)),
              "flagged": float(np.mean(out["is_adversarial"])), "shipped": float(np.mean(out["label"] == y)),
              "gfx": float(np.mean(gfx_label == y)), "search": {}}
    for name, purifier in (searches or {}).items():
        result["search"][name] = round(float(np.mean(labels(classifier, purify(purifier, x, seed)["images"]) == y)), 4)
    if readers:
        result.update({f"gfx_wrong_{k}": v for k, v in reader_split(readers, gfx, y, gfx_label != y).items()})
    if clean is not None:
        distance = np.sqrt(((gfx - _surrogate(model.purifier, clean)) ** 2).reshape(len(x), -1).sum(1))
        result["gfx_l2_to_clean_reconstruction"] = float(distance.mean())
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}


def markdown_table(result):
    """The rows of a `benchmarks/aegan_decompose.py` result as a markdown table (for the card)."""
    steps = list(dict.fromkeys(s for row in result["rows"] for s in row["search"]))  # in order of appearance
    head = (["input", "no defense", "flagged", "as shipped", "G(F(x)), no search"] + [f"search, {s}" for s in steps]
            + ["A wrong on G(F(x)): B and C right", "one of B, C right", "neither right",
               "L2 from G(F(clean))"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        cells = ([row["input"], row["undefended"], row["flagged"], row["shipped"], row["gfx"]]
                 + [row["search"].get(s, "-") for s in steps]
                 + [row.get("gfx_wrong_every_reader_right", "-"), row.get("gfx_wrong_some_reader_right", "-"),
                    row.get("gfx_wrong_no_reader_right", "-"), row.get("gfx_l2_to_clean_reconstruction", "-")])
        lines.append("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |")
    return "\n".join(lines)


def card_analysis(result, report):
    """The card's ``analysis`` item for a `benchmarks/aegan_decompose.py` result stored at ``report``
    (a path relative to the card's folder)."""
    setting = (f"Where the gray-box points go: {result['split']} split, n = {result['n']}, seed {result['seed']}, "
               f"eps {result['eps']}, attacks crafted on classifier A, L = {result['steps']} "
               f"(shipped step {result['shipped_step_size']}); fractions of all inputs "
               "(`python benchmarks/aegan_decompose.py`).")
    return {"setting": setting, "table": markdown_table(result), "report": report}
