"""The one latent search every generative purifier in the zoo uses.

Given a decoder G and images x, find codes z minimising ||G(z) - x||^2 by
gradient descent (plain, or with heavy-ball momentum as Defense-GAN's own
code uses) from one or more starting codes, keeping the best restart per
image. AE-GAN+rs starts from the encoder's code (R=1, L=15);
Defense-GAN starts from R random codes (L=200).

Example:
    >>> z0 = encoder(x, training=False)                                # doctest: +SKIP
    >>> result = latent_search(decoder, x, z0[None], steps=15, step_size=0.05)  # doctest: +SKIP
    >>> result.images.shape, result.codes.shape, result.errors.shape   # doctest: +SKIP

Reference:
    AE-GAN+rs Algorithm 2 (step size halved every 5 steps); Defense-GAN
    (Samangouei et al., 2018) for random restarts.
"""

from __future__ import annotations

import collections

import tensorflow as tf

SearchResult = collections.namedtuple("SearchResult", ["images", "codes", "errors"])


def latent_search(decoder, x, z_init, *, steps, step_size, decay_every=5, decay=0.5, z_clip=1.0, momentum=0.0):
    """Batched gradient descent on ||G(z) - x||^2 from ``R`` starting codes.

    Args:
        decoder: callable ``z -> images`` (called with ``training=False``).
        x: float32 images [N, H, W, C].
        z_init: starting codes [R, N, d] (R restarts per image).
        steps: L, the number of gradient steps (>= 0).
        step_size: initial step size; multiplied by ``decay`` every
            ``decay_every`` steps (Algorithm 2 halves it every 5).
        decay_every: steps between decays (>= 1).
        decay: decay factor in (0, 1].
        z_clip: codes are kept in [-z_clip, z_clip] (the tanh code space of
            an encoder); None for an unbounded prior.
        momentum: heavy-ball momentum in [0, 1): ``v = momentum * v + grad``,
            ``z -= lr * v`` (0: plain gradient descent).

    Returns:
        ``SearchResult(images [N,H,W,C], codes [N,d], errors [N])``: the best
        restart per image and its mean squared reconstruction error.

    Raises:
        ValueError: bad settings or shapes.
    """
    steps, decay_every, _ = check_settings(steps=steps, step_size=step_size, decay_every=decay_every,
                                           decay=decay, momentum=momentum)
    if z_init.shape.rank != 3:
        raise ValueError(f"z_init must be [restarts, batch, latent], got shape {z_init.shape}.")
    return _search(decoder, tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(z_init, tf.float32),
                   steps, float(step_size), decay_every, float(decay), z_clip, float(momentum))


PRIORS = ("uniform", "normal")


def _prior_error(prior):
    return ValueError(f"prior must be one of {PRIORS}, got {prior!r}.")


def _count(name, value, least):
    """A whole number (10, 10.0, numpy ints from a config) as an int >= ``least``; a fraction
    (1.5), a bool or anything else is refused rather than silently truncated."""
    try:
        number = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not number.is_integer() or number < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}.")
    return int(number)


def check_settings(*, steps, step_size, decay_every, decay, momentum=0.0, init_scale=1.0, restarts=1,
                   prior="uniform"):
    """Raises ValueError naming the first search setting out of range (shared by
    `latent_search` and `LatentSearchPurifier`, which calls the kernel directly).

    Returns:
        ``(steps, decay_every, restarts)`` as ints: whole numbers from a config
        (10.0, numpy ints) are taken as counts.
    """
    restarts = _count("restarts", restarts, 1)
    if prior not in PRIORS:
        raise _prior_error(prior)
    steps = _count("steps", steps, 0)
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}.")
    decay_every = _count("decay_every", decay_every, 1)
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay!r}.")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")
    if not init_scale > 0:
        raise ValueError(f"init_scale must be > 0, got {init_scale!r}.")
    return steps, decay_every, restarts


def _search(decoder, x, z_init, steps, step_size, decay_every, decay, z_clip, momentum=0.0):
    """The numeric kernel; callers wrap it in `tf.function` (see `LatentSearchPurifier`)."""
    restarts, batch = tf.shape(z_init)[0], tf.shape(z_init)[1]
    latent = z_init.shape[-1]
    z0 = tf.reshape(z_init, [-1, latent])
    # Each restart is an independent row of one big batch: one decoder call per step.
    x_rep = tf.tile(x, [restarts, 1, 1, 1])

    def per_image_error(z):
        diff = tf.cast(decoder(z, training=False), tf.float32) - x_rep
        return tf.reduce_sum(tf.square(diff), axis=[1, 2, 3])

    def body(k, z, velocity):
        with tf.GradientTape() as tape:
            tape.watch(z)
            # Summing per-image errors keeps each row's gradient its own.
            loss = tf.reduce_sum(per_image_error(z))
        velocity = momentum * velocity + tape.gradient(loss, z)
        lr = step_size * tf.pow(decay, tf.cast(k // decay_every, tf.float32))
        z = z - lr * velocity
        if z_clip is not None:
            z = tf.clip_by_value(z, -z_clip, z_clip)
        return k + 1, z, velocity

    _, z, _ = tf.while_loop(lambda k, z, v: k < steps, body, (tf.constant(0), z0, tf.zeros_like(z0)),
                            maximum_iterations=steps)
    images = tf.cast(decoder(z, training=False), tf.float32)
    errors = tf.reduce_mean(tf.square(images - x_rep), axis=[1, 2, 3])
    # Pick the best restart per image.
    errors_rb = tf.reshape(errors, [restarts, batch])
    best = tf.argmin(errors_rb, axis=0, output_type=tf.int32)
    rows = best * batch + tf.range(batch)
    return SearchResult(tf.gather(images, rows), tf.gather(z, rows), tf.gather(errors, rows))


def random_codes(batch, latent_dim, restarts, seed, prior="uniform", scale=1.0):
    """Stateless random starting codes [restarts, batch, latent_dim].

    ``scale`` is the half-width (uniform) or standard deviation (normal);
    Defense-GAN's own code starts its search from N(0, 1/d), not N(0, I).

    The same int ``seed`` gives the same codes in every process, so a
    purification request is reproducible.
    """
    seed = tf.stack([tf.cast(seed, tf.int32), tf.constant(20181, tf.int32)])
    shape = tf.stack([restarts, batch, latent_dim])
    if prior == "uniform":
        return tf.random.stateless_uniform(shape, seed, -scale, scale)
    if prior == "normal":
        return tf.random.stateless_normal(shape, seed, stddev=scale)
    raise _prior_error(prior)
