"""APE-GAN's losses (Eqs. 11-14 of Shen et al. 2017), free functions on logits."""

from keras import ops


def discriminator_loss(real_logits, fake_logits):
    """-[log D(x) + log(1 - D(G(x_adv)))], averaged.

    Eq. 11 as printed reads log D(G(x_adv)) in the second term, which would
    reward D for calling reconstructions real; Eq. 10's max over D gives
    log(1 - D(G(x_adv))), which is what we use.
    """
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_adversarial_loss(fake_logits):
    """-log D(G(x_adv)) averaged (Eq. 14 without its additive constant)."""
    return ops.mean(ops.softplus(-fake_logits))


def pixel_mse(x, x_hat):
    """Eq. 13: mean squared error per pixel, averaged over the batch."""
    return ops.mean(ops.square(ops.cast(x_hat, "float32") - ops.cast(x, "float32")))


def ape_loss(x, x_hat, fake_logits, mse_weight=0.7, adversarial_weight=0.3):
    """Eq. 12: xi_1 * MSE + xi_2 * adversarial term (xi = 0.7, 0.3)."""
    return mse_weight * pixel_mse(x, x_hat) + adversarial_weight * generator_adversarial_loss(fake_logits)
