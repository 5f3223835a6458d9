"""FM-Defense's loss terms (free functions, no state).

* combo-VAE (Eq. 8): reconstruction L_R + KL + gamma * TC, the total
  correlation estimated by a discriminator on codes against the same codes
  with each dimension permuted across the batch (Eq. 7; FactorVAE's trick).
* DGMM (Eqs. 10-12): L_cls, the cross-entropy of q(c | z_u) under the
  mixture prior, plus lambda_lkd * L_lkd, the negative log-likelihood of z_u
  under its own class's Gaussian.

L_R is the Bernoulli negative log-likelihood summed over pixels, the scale at
which FactorVAE tuned gamma = 40 (the value the paper adopts); the paper
allows any distance ("can be defined as the l_2 loss").
"""

import keras
import tensorflow as tf
from keras import ops


def reconstruction(x, x_hat):
    """Summed binary cross-entropy per image, averaged over the batch."""
    x, x_hat = ops.cast(x, "float32"), ops.clip(ops.cast(x_hat, "float32"), 1e-6, 1 - 1e-6)
    per_pixel = -(x * ops.log(x_hat) + (1 - x) * ops.log(1 - x_hat))
    return ops.mean(ops.sum(per_pixel, axis=(1, 2, 3)))


def kl_to_standard_normal(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) summed over codes, averaged over the batch."""
    mean, log_var = ops.cast(mean, "float32"), ops.cast(log_var, "float32")
    return ops.mean(ops.sum(0.5 * (ops.exp(log_var) + ops.square(mean) - 1.0 - log_var), axis=-1))


def total_correlation(logits):
    """TC(z) ~ E[log D(z) / (1 - D(z))] (Eq. 7): the mean logit difference of the discriminator."""
    logits = ops.cast(logits, "float32")
    return ops.mean(logits[:, 0] - logits[:, 1])


def permute_dims(z, noise):
    """Each code dimension shuffled independently across the batch (samples of prod_j q(z_j));
    ``noise`` (uniform, the shape of z) sets the permutations: its argsort down each column."""
    return tf.experimental.numpy.take_along_axis(z, tf.argsort(noise, axis=0), axis=0)


def discriminator(real_logits, permuted_logits):
    """Cross-entropy of the TC discriminator: class 0 for q(z), class 1 for permuted codes."""
    ce = keras.losses.sparse_categorical_crossentropy
    real = ce(tf.zeros(tf.shape(real_logits)[:1], tf.int32), real_logits, from_logits=True)
    permuted = ce(tf.ones(tf.shape(permuted_logits)[:1], tf.int32), permuted_logits, from_logits=True)
    return 0.5 * (ops.mean(real) + ops.mean(permuted))


def mixture_classification(labels, log_likelihoods):
    """L_cls (Eq. 10): -log q(y | z_u) with q(c | z_u) the softmax of the class log-likelihoods."""
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, log_likelihoods, from_logits=True))


def mixture_likelihood(labels, log_likelihoods):
    """L_lkd (Eq. 11): -log N(z_u; mu_y, Sigma_y), averaged over the batch."""
    return -ops.mean(tf.gather(log_likelihoods, tf.cast(labels, tf.int32), axis=1, batch_dims=1))
