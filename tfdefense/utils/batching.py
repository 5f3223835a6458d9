"""One way to walk an array in batches: slices, mapped and concatenated results, per-image errors.

Example:
    >>> import numpy as np
    >>> concat_map(lambda b: b.sum(axis=1), np.ones((5, 3)), batch_size=2)
    array([3., 3., 3., 3., 3.])
"""

import numpy as np

from tfdefense.utils import progress


def batches(n, batch_size, desc=None):
    """Consecutive slices covering ``range(n)``; a progress bar under ``desc`` when given."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    starts = range(0, n, batch_size)
    for start in (progress.bar(starts, desc=desc, unit="batch") if desc else starts):
        yield slice(start, start + batch_size)


def concat_map(fn, x, batch_size=256, desc=None):
    """``fn`` on consecutive batches of ``x``, its outputs concatenated (an array, or a dict of arrays)."""
    if len(x) == 0:
        raise ValueError(f"no images: got an empty array of shape {getattr(x, 'shape', (0,))}.")
    parts = [fn(x[s]) for s in batches(len(x), batch_size, desc)]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
    return np.concatenate([np.asarray(p) for p in parts])


def per_image_mse(fn, x, batch_size=500):
    """Per-image mean squared error between ``fn(x)`` (an image-to-image function) and ``x``."""
    return concat_map(lambda b: np.mean((np.asarray(fn(b)) - b) ** 2, axis=tuple(range(1, b.ndim))), x, batch_size)
