"""What every attack shares: input checks, batching, predicted labels."""

import numpy as np
import tensorflow as tf

from tfdefense.utils import batching


def check(x, y, eps=None, clip_min=0.0, clip_max=1.0):
    """``x`` as float32 and ``y`` as int64 after the checks every attack makes (ValueError otherwise)."""
    x = np.asarray(x, np.float32)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch [N, H, W, C], got shape {x.shape}.")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
    if eps is not None and not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}.")
    if not clip_min < clip_max:
        raise ValueError(f"clip_min {clip_min} must be below clip_max {clip_max}.")
    return x, None if y is None else np.asarray(y, np.int64)


def batched(fn, x, y, batch_size, desc):
    """``fn(x batch, y batch or None)`` over consecutive batches of ``x``, into one array like ``x``."""
    out = np.empty_like(x)
    for sl in batching.batches(len(x), batch_size, desc):
        out[sl] = np.asarray(fn(tf.constant(x[sl]), None if y is None else tf.constant(y[sl])))
    return out


def predicted_labels(model_fn, x, batch_size):
    """Argmax labels of ``model_fn`` on numpy ``x`` (the target of an attack given no labels)."""
    return batching.concat_map(lambda b: np.argmax(np.asarray(model_fn(tf.constant(b))), axis=-1), x, batch_size)
