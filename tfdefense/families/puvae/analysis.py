"""Where PuVAE's purification loses its points (see benchmarks/puvae_decompose.py)."""

import numpy as np

from tfdefense.utils import batching


def decompose(purifier, classifier, x, y, seed=0, batch_size=250):
    """How the class choice and the reconstruction each do on images ``x`` with labels ``y``.

    Returns, as fractions (or mean RMSE) over ``x``: ``purified`` (the classifier is right on the
    chosen reconstruction), ``choice_is_true_class`` (the min-RMSE reconstruction is the one
    conditioned on ``y``), ``oracle`` (the classifier is right on that true-class reconstruction:
    what a perfect choice would give), ``agrees_with_choice`` (the classifier's label on the chosen
    reconstruction is its condition), ``rmse_true`` and ``rmse_chosen``.

    Example:
        >>> decompose(tfdefense.load("puvae_mnist").purifier, classifier, x, y)   # doctest: +SKIP
        {'purified': 0.474, 'choice_is_true_class': 0.474, 'oracle': 1.0, ...}
    """
    sums = {}
    for batch in batching.batches(len(x), batch_size):
        xb, yb = x[batch], y[batch]
        images, rmse = (np.asarray(t) for t in purifier.reconstructions(xb, seed))
        chosen = rmse.argmin(1)
        rows = np.arange(len(xb))
        label_chosen = np.asarray(classifier(images[rows, chosen], training=False)).argmax(-1)
        label_true = np.asarray(classifier(images[rows, yb], training=False)).argmax(-1)
        batch = {"purified": label_chosen == yb, "choice_is_true_class": chosen == yb, "oracle": label_true == yb,
                 "agrees_with_choice": label_chosen == chosen, "rmse_true": rmse[rows, yb],
                 "rmse_chosen": rmse[rows, chosen]}
        for key, values in batch.items():
            sums[key] = sums.get(key, 0.0) + float(np.sum(values))
    return {k: round(v / len(x), 4) for k, v in sums.items()}
