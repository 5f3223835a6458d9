"""WGAN-GP losses (Gulrajani et al., 2017), as free functions."""

import tensorflow as tf


def critic_loss(real_scores, fake_scores):
    """The critic minimises E[C(G(z))] - E[C(x)] (the negated Wasserstein estimate)."""
    return tf.reduce_mean(fake_scores) - tf.reduce_mean(real_scores)


def generator_loss(fake_scores):
    return -tf.reduce_mean(fake_scores)


def gradient_penalty(critic, real, fake, alpha):
    """E[(||grad C(x_hat)||_2 - 1)^2] at x_hat = alpha * real + (1 - alpha) * fake."""
    x_hat = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat, training=True)
    grads = tape.gradient(scores, x_hat)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))
