"""Threat models as logits functions an attack can differentiate.

* ``gray``: the bare classifier; the attacker does not know the defense.
* ``white``: the attacker knows everything. For a defense whose purifier is
  a latent search (not usefully differentiable), the forward pass is the real
  defense and the backward pass is BPDA: identity (``bpda="identity"``) or the
  gradient of the differentiable reconstruction G(F(x)) (``bpda="gfx"``, the
  default where there is an encoder), averaged over ``eot`` samples of the
  defense's randomness (EOT). A plain differentiable model gets its true
  end-to-end gradient.

Example:
    >>> fn = white_box_fn(tfdefense.load("aegan_mnist"))                     # doctest: +SKIP
    >>> x_adv = attacks.pgd(fn, x, y, eps=0.3)                                # doctest: +SKIP

Reference:
    Athalye, Carlini, Wagner, Obfuscated gradients give a false sense of
    security (ICML 2018): BPDA and EOT.
"""

import tensorflow as tf

BPDA = ("gfx", "identity")


def gray_box_fn(model):
    """The classifier behind a defense (or the model itself)."""
    classifier = getattr(model, "classifier", model)
    return lambda x: classifier(x, training=False)


def bpda_purify(model, bpda="gfx", eot=1, seed=0):
    """``x -> purified`` whose gradient is BPDA's approximation.

    Args:
        model: a `DefendedClassifier`.
        bpda: "gfx" (backward through G(F(x))) or "identity".
        eot: samples of the defense's randomness (random restarts) to average.
        seed: first seed of the EOT samples.
    """
    if bpda not in BPDA:
        raise ValueError(f"bpda must be one of {BPDA}, got {bpda!r}.")
    if bpda == "gfx" and model.encoder is None:
        raise ValueError("bpda='gfx' needs an encoder; use bpda='identity' for random-start search.")
    if eot < 1:
        raise ValueError(f"eot must be >= 1, got {eot}.")

    @tf.custom_gradient
    def purify(x):
        samples = [model._defend(x, tf.constant(seed + i, tf.int32))["purified"] for i in range(eot)]
        purified = tf.add_n(samples) / float(eot) if eot > 1 else samples[0]

        def grad(upstream, variables=None):
            # The attacker differentiates w.r.t. the input only, never the weights.
            no_weight_grads = [None] * len(variables or [])
            if bpda == "identity":
                return upstream, no_weight_grads
            with tf.GradientTape() as tape:
                tape.watch(x)
                approx = model.reconstruct(x)
            return tape.gradient(approx, x, output_gradients=upstream), no_weight_grads

        return purified, grad

    return purify


def white_box_fn(model, bpda=None, eot=None, seed=0):
    """Logits function for the adaptive white-box attack on ``model``.

    For a `DefendedClassifier`: classifier(BPDA-purify(x)); the default BPDA is
    "gfx" with an encoder and "identity" without; the default EOT is the
    number of random restarts (1 for encoder-started search, whose forward
    pass is deterministic). Any other keras model: its own end-to-end gradient.
    """
    if not hasattr(model, "purifier"):
        return lambda x: model(x, training=False)
    bpda = bpda or ("gfx" if model.encoder is not None else "identity")
    has_random_starts = model.purifier.restarts > (1 if model.encoder is not None else 0)
    eot = eot or (4 if has_random_starts else 1)
    purify = bpda_purify(model, bpda=bpda, eot=eot, seed=seed)
    return lambda x: model.classifier(purify(tf.cast(x, tf.float32)), training=False)


def input_gradient_norm(logits_fn, x, y):
    """Mean L1 norm of the cross-entropy gradient w.r.t. the input (a sanity check: 0 means masked)."""
    x = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.keras.losses.sparse_categorical_crossentropy(y, logits_fn(x), from_logits=True)
    grad = tape.gradient(loss, x)
    return float(tf.reduce_mean(tf.reduce_sum(tf.abs(grad), axis=[1, 2, 3])))
