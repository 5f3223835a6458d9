"""MagNet's loss (a free function, no state)."""

from keras import ops


def reconstruction_mse(x, x_hat):
    """Mean squared error per pixel, averaged over the batch (MagNet's training loss)."""
    return ops.mean(ops.square(ops.cast(x_hat, "float32") - ops.cast(x, "float32")))
