"""The overpowered min-max attack on Invert-and-Classify (robust manifold defense).

Find pairs z, z' whose images G(z), G(z') are nearly identical but whose
classifier outputs are far apart:

    sup_{z, z'} inf_{lambda >= 0} ||C(G(z)) - C(G(z'))||^2 - lambda (||G(z) - G(z')||^2 - eta^2)

by alternating gradient steps: ascent on the codes (Adam), and a much more
aggressive projected step on the multiplier, whose payoff is linear.

Example:
    >>> result = minmax_attack(generator, classifier, n_pairs=256, steps=2000)   # doctest: +SKIP
    >>> result["valid_fraction"], result["different_fraction"]                    # doctest: +SKIP

Reference:
    Ilyas et al., The Robust Manifold Defense (2017), Sections 2.2 and 4.3
    (eta^2 = 2.46 on 64x64x3 CelebA, i.e. 2e-4 per pixel-channel; pairs are
    valid when the mean squared image difference is < 5e-4).
"""

import numpy as np
import tensorflow as tf

from tfdefense.purification.adam import adam_update


def _terms(generator, classifier, z, z2):
    a, b = generator(z, training=False), generator(z2, training=False)
    pa = tf.nn.softmax(tf.cast(classifier(a, training=False), tf.float32))
    pb = tf.nn.softmax(tf.cast(classifier(b, training=False), tf.float32))
    out_dist = tf.reduce_sum(tf.square(pa - pb), axis=1)
    img_dist = tf.reduce_sum(tf.square(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)), axis=[1, 2, 3])
    return out_dist, img_dist, pa, pb


def minmax_pairs(generator, classifier, z, z2, *, steps, eta2, learning_rate=0.01, lambda_rate=100.0):
    """The attack's kernel: ``steps`` alternating updates from codes (z, z'), as tensors.

    Adam ascent on the codes, projected ascent on the multiplier; written as a
    `tf.while_loop` so it runs inside a `train_step` as well as on its own.

    Returns:
        (z, z') after the updates.
    """
    def body(k, z, z2, lam, m, v):
        with tf.GradientTape() as tape:
            tape.watch([z, z2])
            out_dist, img_dist, _, _ = _terms(generator, classifier, z, z2)
            objective = tf.reduce_sum(out_dist - lam * (img_dist - eta2))
        ascent = [-g for g in tape.gradient(objective, [z, z2])]
        (z, z2), m, v = adam_update([z, z2], ascent, m, v, k, learning_rate)
        lam = tf.nn.relu(lam + lambda_rate * (img_dist - eta2))
        return k + 1, z, z2, lam, m, v

    zeros = [tf.zeros_like(z), tf.zeros_like(z2)]
    lam = tf.zeros([tf.shape(z)[0]])
    _, z, z2, _, _, _ = tf.while_loop(lambda k, *_: k < steps, body, (tf.constant(0), z, z2, lam, zeros, zeros),
                                      maximum_iterations=steps)
    return tf.stop_gradient(z), tf.stop_gradient(z2)


def minmax_attack(generator, classifier, *, n_pairs=256, latent_dim=128, eta2_per_pixel=2e-4, steps=2000,
                  learning_rate=0.01, lambda_rate=100.0, valid_mse=5e-4, seed=0):
    """Runs the attack from random N(0, I) codes and summarises it.

    Args:
        generator: G, codes -> images.
        classifier: C, images -> logits.
        n_pairs: pairs optimised in parallel.
        eta2_per_pixel: the L2 budget eta^2 divided by the number of pixels.
        steps: alternating steps.
        learning_rate: Adam step for the codes.
        lambda_rate: step of the multiplier (aggressive).
        valid_mse: a pair is valid when its mean squared image difference is below this.
        seed: seed of the starting codes.

    Returns:
        dict with ``z``, ``z_prime`` (numpy), ``valid_fraction``,
        ``different_fraction`` (among valid pairs), ``mean_kl`` (among valid
        pairs), and the settings.
    """
    if n_pairs < 1 or steps < 1:
        raise ValueError("n_pairs and steps must be >= 1.")
    z0 = tf.random.stateless_normal([n_pairs, latent_dim], [seed, 1])
    z0_prime = z0 + 0.01 * tf.random.stateless_normal([n_pairs, latent_dim], [seed, 2])
    pixels = float(np.prod(generator.outputs[0].shape[1:]))
    eta2 = eta2_per_pixel * pixels
    run = tf.function(lambda a, b: minmax_pairs(generator, classifier, a, b, steps=steps, eta2=eta2,
                                                learning_rate=learning_rate, lambda_rate=lambda_rate))
    z, z2 = run(z0, z0_prime)
    _, img_dist, pa, pb = _terms(generator, classifier, z, z2)
    valid = (img_dist / pixels).numpy() < valid_mse
    different = (tf.argmax(pa, 1) != tf.argmax(pb, 1)).numpy()
    kl = tf.reduce_sum(pa * (tf.math.log(pa + 1e-12) - tf.math.log(pb + 1e-12)), axis=1).numpy()
    return {"z": z.numpy(), "z_prime": z2.numpy(), "valid_fraction": float(valid.mean()),
            "different_fraction": float(different[valid].mean()) if valid.any() else 0.0,
            "mean_kl": float(kl[valid].mean()) if valid.any() else float("nan"), "n_pairs": n_pairs,
            "steps": steps, "eta2": eta2, "valid_mse": valid_mse, "seed": seed}
