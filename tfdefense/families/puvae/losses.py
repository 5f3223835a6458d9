"""PuVAE's loss terms (free functions, no state).

The loss of Hwang et al. is a weighted sum of a reconstruction term, the KL
divergence of q(z | x, y) from N(0, I), and the cross-entropy of the frozen
classifier on the reconstruction with the true label. Its weights are
entry settings (``reconstruction_weight``, ``kl_weight``, ``ce_weight``).
"""

import keras
from keras import ops


def reconstruction_mse(x, x_hat):
    """Mean squared error per pixel, averaged over the batch."""
    return ops.mean(ops.square(ops.cast(x_hat, "float32") - ops.cast(x, "float32")))


def kl_to_standard_normal(mean, scale):
    """KL(N(mean, scale^2) || N(0, I)), summed over latent dimensions, averaged over the batch."""
    mean, scale = ops.cast(mean, "float32"), ops.cast(scale, "float32")
    per_dim = 0.5 * (ops.square(mean) + ops.square(scale) - 1.0) - ops.log(scale + 1e-8)
    return ops.mean(ops.sum(per_dim, axis=-1))


def classifier_ce(labels, logits):
    """Cross-entropy of the classifier's logits on the reconstructions with the true labels."""
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, ops.cast(logits, "float32"),
                                                                 from_logits=True))


def rmse_per_image(x, x_hat):
    """Root mean squared error of each image to its reconstruction: PuVAE's selection rule and score."""
    diff = ops.cast(x_hat, "float32") - ops.cast(x, "float32")
    return ops.sqrt(ops.mean(ops.square(diff), axis=tuple(range(1, len(diff.shape)))))
