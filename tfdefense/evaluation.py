"""Measuring models: clean accuracy now; attacks and threat models build on it.

Example:
    >>> import tfdefense
    >>> from tfdefense import datasets, evaluation
    >>> x, y = datasets.load("mnist", "dev")                       # doctest: +SKIP
    >>> evaluation.accuracy(tfdefense.load("classifier_a_mnist"), x, y)  # doctest: +SKIP
    0.99...
"""

import numpy as np

from tfdefense import progress


def predict_logits(model, x, batch_size=500, desc="predict"):
    """Logits of ``model`` on numpy ``x`` in batches, with a progress bar."""
    fn = getattr(model, "predict_logits", None) or (lambda b: model(b, training=False))
    out = []
    for start in progress.bar(range(0, len(x), batch_size), desc=desc, unit_scale=batch_size):
        out.append(np.asarray(fn(x[start:start + batch_size])))
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


def accuracy(model, x, y, batch_size=500, desc="accuracy"):
    """Fraction of ``x`` whose argmax logit equals ``y``."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
    logits = predict_logits(model, x, batch_size=batch_size, desc=desc)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))
