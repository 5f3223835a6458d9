"""Loss functions of AE-GAN (free functions, no state)."""

from keras import ops


def discriminator_loss(real_logits, fake_logits):
    """-[log D(x) + log(1 - D(G(z)))], averaged: D ascends the GAN value."""
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_loss(fake_logits):
    """Non-saturating generator loss -log D(G(z)).

    Algorithm 1 writes the minimax form log(1 - D(G(z))); its gradient vanishes
    while D wins, which is the usual state early on, so we use the
    non-saturating form recommended by Goodfellow et al. (2014) instead.
    """
    return ops.mean(ops.softplus(-fake_logits))


def reconstruction_loss(x, x_hat):
    """||x_hat - x||_2^2 per image (summed over pixels), averaged over the batch."""
    return ops.mean(ops.sum(ops.square(ops.cast(x_hat, "float32") - ops.cast(x, "float32")), axis=(1, 2, 3)))
