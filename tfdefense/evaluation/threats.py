"""Threat models as logits functions an attack can differentiate.

* ``gray``: the bare classifier; the attacker does not know the defense.
* ``white``: the attacker knows everything, and the gradient follows what
  the defense declares (`tfdefense.contract`):

  - no purifier, or a differentiable one (MagNet, APE-GAN, adversarial
    training): the exact end-to-end gradient of the real pipeline;
  - a purifier that is not differentiable (latent search, Deep Image Prior):
    BPDA, whose forward pass is the real defense and whose backward pass
    differentiates the purifier's declared surrogate (G(F(x)) for AE-GAN+rs,
    identity for Defense-GAN), or identity when asked (``bpda="identity"``);
  - a differentiable purifier that declares a smooth surrogate (PuVAE:
    a softmax over the classes' reconstruction errors in place of the
    argmin): BPDA through it when asked (``bpda="surrogate"``), since the
    exact gradient never asks another class's reconstruction to win;
  - a random purifier: EOT, the logits averaged over ``eot`` seeds (default:
    the purifier's ``eot_samples``).

Example:
    >>> fn = white_box_fn(tfdefense.load("aegan_mnist"))                     # doctest: +SKIP
    >>> x_adv = attacks.pgd(fn, x, y, eps=0.3)                                # doctest: +SKIP
    >>> gradient_kind(tfdefense.load("magnet_mnist"))                         # doctest: +SKIP
    'exact'

Reference:
    Athalye, Carlini, Wagner, Obfuscated gradients give a false sense of
    security (ICML 2018): BPDA and EOT.
"""

import tensorflow as tf

from tfdefense.defense.defended import as_defended

BPDA = ("surrogate", "identity")


def gray_box_fn(model):
    """The classifier behind a defense (a bare classifier is its own)."""
    classifier = as_defended(model).classifier
    return lambda x: classifier(x, training=False)


def gradient_kind(model, bpda=None):
    """What a white-box attack differentiates: "exact", or "bpda:<surrogate>" (e.g. "bpda:gfx")."""
    purifier = as_defended(model).purifier
    if purifier is None:
        return "exact"
    # A differentiable purifier's exact gradient is the default; one whose exact gradient is only piecewise
    # informative (PuVAE's min-RMSE choice of class) may declare a smooth surrogate, used when asked for, and
    # BPDA through identity (the weak reference run beside the exact attack) is always what it says.
    asked_surrogate = bpda in ("surrogate", "gfx") and purifier.surrogate_name != "self"
    if purifier.differentiable and not (asked_surrogate or bpda == "identity"):
        return "exact"
    return "bpda:" + (purifier.surrogate_name if bpda in (None, "surrogate", "gfx") else "identity")


def purified_fn(model, seed=0, bpda=None):
    """``x -> purified images`` of the real pipeline, with the gradient the threat model calls for.

    Args:
        model: a `DefendedClassifier`.
        seed: seed of the purifier's randomness for this sample.
        bpda: for a non-differentiable purifier, "surrogate" (default; "gfx"
            is accepted as its old name) or "identity".
    """
    if bpda is not None and bpda not in BPDA + ("gfx",):
        raise ValueError(f"bpda must be one of {BPDA}, got {bpda!r}.")
    seed = tf.constant(seed, tf.int32)
    kind = gradient_kind(model, bpda)
    if kind == "exact":
        return lambda x: model.pipeline(x, seed)["purified"]
    backward = tf.identity if kind == "bpda:identity" else model.purifier.surrogate

    @tf.custom_gradient
    def purify(x):
        purified = model.pipeline(x, seed)["purified"]

        def grad(upstream, variables=None):
            # The attacker differentiates w.r.t. the input only, never the weights.
            no_weight_grads = [None] * len(variables or [])
            with tf.GradientTape() as tape:
                tape.watch(x)
                approx = backward(x)
            return tape.gradient(approx, x, output_gradients=upstream), no_weight_grads

        return purified, grad

    return purify


def eot_count(model, eot=None):
    """How many seeds a white-box attack averages over: ``eot`` (default: the
    purifier's ``eot_samples``), 1 when nothing in the pipeline is random.

    Raises:
        ValueError: ``eot`` < 1.
    """
    purifier = as_defended(model).purifier
    eot = eot or (purifier.eot_samples if purifier is not None else 1)
    if eot < 1:
        raise ValueError(f"eot must be >= 1, got {eot}.")
    return eot if purifier is not None and purifier.random else 1


def white_box_fn(model, bpda=None, eot=None, seed=0):
    """Logits function for the adaptive white-box attack on ``model``.

    For a `DefendedClassifier`: the classifier's logits on the pipeline's
    purified images, differentiated as `gradient_kind` says, averaged over
    ``eot`` seeds (seed, seed + 1, ...) when the purifier is random. A bare
    keras classifier is a defense with neither purifier nor detector: its own
    end-to-end gradient.

    Raises:
        ValueError: ``eot`` < 1 or an unknown ``bpda``.
    """
    model = as_defended(model)
    eot = eot_count(model, eot)
    samples = [purified_fn(model, seed + i, bpda) for i in range(eot)]

    def logits(x):
        x = tf.cast(x, tf.float32)
        outs = [model.classifier(purify(x), training=False) for purify in samples]
        return tf.add_n(outs) / float(eot) if eot > 1 else outs[0]

    return logits


def input_gradient_norm(logits_fn, x, y):
    """Mean L1 norm of the cross-entropy gradient w.r.t. the input (a sanity check: 0 means masked)."""
    x = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.keras.losses.sparse_categorical_crossentropy(y, logits_fn(x), from_logits=True)
    grad = tape.gradient(loss, x)
    return float(tf.reduce_mean(tf.reduce_sum(tf.abs(grad), axis=[1, 2, 3])))
