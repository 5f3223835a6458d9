"""`LatentSearchPurifier`: a Keras layer over `latent_search`."""

import keras
import tensorflow as tf

from tfdefense.defense import cost
from tfdefense.defense.contract import PurifierLayer
from tfdefense.purification import search
from tfdefense.defense.serialization import deserialize_parts, serialize_parts


@keras.saving.register_keras_serializable(package="tfdefense")
class LatentSearchPurifier(PurifierLayer):
    """Projects images onto the range of a decoder by latent search.

    With an ``encoder`` the first start is F(x) (AE-GAN+rs); the other
    ``restarts - 1`` starts (all of them without an encoder, as in
    Defense-GAN) are random codes drawn statelessly from ``seed``.

    Args:
        decoder: G, codes -> images; always called with ``training=False``.
        encoder: optional F, images -> codes.
        steps: L gradient steps.
        step_size: initial step size (halved every ``decay_every`` steps).
        restarts: R starting codes per image.
        prior: "uniform" (codes in [-1, 1]) or "normal" for random starts.
        z_clip: clip codes to [-z_clip, z_clip]; None for no clipping.
        momentum: heavy-ball momentum of the search (0: plain gradient descent).
        init_scale: half-width or standard deviation of the random starts.

    Contract: not differentiable (the search's gradient is not the defense's);
    BPDA goes through G(F(x)) with an encoder, else identity; random when it
    has random starts, so white-box attacks average 4 EOT samples.

    Call args:
        x: float32 images [N, H, W, C].
        seed: int seed for the random restarts.

    Returns:
        dict with ``images``, ``codes``, ``errors`` (per-image MSE).

    Example:
        >>> purifier = LatentSearchPurifier(decoder, encoder, steps=15, step_size=0.02)   # doctest: +SKIP
        >>> out = purifier(x)                                                  # doctest: +SKIP
    """

    def __init__(self, decoder, encoder=None, steps=15, step_size=0.02, restarts=1, decay_every=5,
                 decay=0.5, prior="uniform", z_clip=1.0, momentum=0.0, init_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        steps, decay_every, restarts = search.check_settings(
            steps=steps, step_size=step_size, decay_every=decay_every, decay=decay, momentum=momentum,
            init_scale=init_scale, restarts=restarts, prior=prior)
        self.decoder = decoder
        self.encoder = encoder
        self.steps = steps
        self.step_size = float(step_size)
        self.restarts = restarts
        self.decay_every = decay_every
        self.decay = float(decay)
        self.prior = prior
        self.z_clip = z_clip
        self.momentum = float(momentum)
        self.init_scale = float(init_scale)
        self.latent_dim = int(decoder.inputs[0].shape[-1])
        self._run = tf.function(self._purify, reduce_retracing=True)
        self.built = True

    @property
    def surrogate_name(self):
        return "gfx" if self.encoder is not None else "identity"

    @property
    def random(self):
        return self.restarts > (1 if self.encoder is not None else 0)

    def surrogate(self, x):
        """G(F(x)) with an encoder (the cheap path), else identity."""
        if self.encoder is None:
            return tf.cast(x, tf.float32)
        return tf.cast(self.decoder(self.encoder(x, training=False), training=False), tf.float32)

    def flops(self):
        """The encoder once, then per restart L steps of decoder forward and input gradient, and a decode."""
        return cost.search_flops(self.decoder, self.encoder, self.steps, self.restarts)

    def surrogate_flops(self):
        if self.encoder is None:
            return 0
        return cost.forward_flops(self.encoder) + cost.forward_flops(self.decoder)

    def initial_codes(self, x, seed=0):
        """Starting codes [R, N, d]: F(x) first when there is an encoder."""
        batch = tf.shape(x)[0]
        n_random = self.restarts - (1 if self.encoder is not None else 0)
        starts = []
        if self.encoder is not None:
            starts.append(tf.cast(self.encoder(x, training=False), tf.float32)[None])
        if n_random:
            starts.append(search.random_codes(batch, self.latent_dim, n_random, seed, self.prior,
                                              self.init_scale))
        return tf.concat(starts, axis=0) if len(starts) > 1 else starts[0]

    def _purify(self, x, seed):
        result = search._search(self.decoder, x, self.initial_codes(x, seed), self.steps, self.step_size,
                                self.decay_every, self.decay, self.z_clip, self.momentum)
        return result._asdict()

    def call(self, x, seed=0):
        return self._run(tf.cast(x, tf.float32), tf.convert_to_tensor(seed, tf.int32))

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, ("decoder", "encoder")))
        config.update({
            "steps": self.steps, "step_size": self.step_size, "restarts": self.restarts,
            "decay_every": self.decay_every, "decay": self.decay, "prior": self.prior, "z_clip": self.z_clip,
            "momentum": self.momentum, "init_scale": self.init_scale,
        })
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, ("decoder", "encoder")))


# Its name until the layout showed the architecture: `Purifier` and models saved under "tfdefense>Purifier"
# still work.
Purifier = LatentSearchPurifier
keras.saving.get_custom_objects()["tfdefense>Purifier"] = LatentSearchPurifier
