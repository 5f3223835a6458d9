"""`ClassConditionalPurifier`: PuVAE's inference (Wester & Thisted 2020 Figure 4)."""

import keras
import tensorflow as tf

from tfdefense.defense import cost
from tfdefense.defense.contract import PurifierLayer
from tfdefense.families.puvae import losses
from tfdefense.defense.serialization import deserialize_parts, serialize_parts

_SEED_SALT = 20190301  # second half of the stateless seed pair


@keras.saving.register_keras_serializable(package="tfdefense")
class ClassConditionalPurifier(PurifierLayer):
    """Reconstructs each input once per class and keeps the reconstruction nearest to it.

    For N inputs and C classes, one batched pass encodes every (input, class)
    pair (the convolutions once per input), samples z = mean +
    ``sampling_scale`` * scale * noise with noise drawn statelessly from
    ``seed``, decodes, and keeps per input the reconstruction with the
    smallest RMSE; that RMSE is the ``errors`` output a detector reads.

    Contract: differentiable (the gradient flows through the chosen
    reconstruction; the choice itself is piecewise constant), random when
    ``sampling_scale`` > 0, so white-box attacks average EOT samples. Its
    ``surrogate`` is a soft choice over the classes, which an attack uses as
    BPDA when it asks for it (``white_box={"bpda": "surrogate"}``) so the
    gradient can ask another class's reconstruction to win.

    Args:
        trunk, head, decoder: the networks of `tfdefense.puvae.builders`.
        sampling_scale: multiplies the posterior's scale at inference; 0
            decodes the posterior mean (deterministic).
        soft_temperature: temperature of the surrogate's softmax over -RMSE.

    Returns (call):
        dict with ``images`` [N, 28, 28, 1], ``errors`` [N] (the smallest RMSE)
        and ``class`` [N] (the condition of the chosen reconstruction).

    Example:
        >>> purifier = ClassConditionalPurifier(trunk, head, decoder)     # doctest: +SKIP
        >>> out = purifier(x, seed=3)                                      # doctest: +SKIP
    """

    differentiable = True
    # The exact gradient flows through the chosen class only; the declared surrogate (BPDA when an attack
    # asks for it) weighs every class's reconstruction by a softmax of its negative RMSE.
    surrogate_name = "soft-min-rmse"

    def __init__(self, trunk, head, decoder, sampling_scale=1.0, soft_temperature=0.01, **kwargs):
        super().__init__(**kwargs)
        if not sampling_scale >= 0:
            raise ValueError(f"sampling_scale must be >= 0, got {sampling_scale!r}.")
        if not soft_temperature > 0:
            raise ValueError(f"soft_temperature must be > 0, got {soft_temperature!r}.")
        self.trunk, self.head, self.decoder = trunk, head, decoder
        self.sampling_scale, self.soft_temperature = float(sampling_scale), float(soft_temperature)
        self.classes = int(decoder.inputs[1].shape[-1])
        self.built = True

    @property
    def random(self):
        return self.sampling_scale > 0

    def flops(self):
        """The shared trunk once, the conditional head and the decoder once per class."""
        return cost.forward_flops(self.trunk) + self.classes * (cost.forward_flops(self.head)
                                                                + cost.forward_flops(self.decoder))

    def reconstructions(self, x, seed=0, sample=True):
        """All C reconstructions [N, C, 28, 28, 1] and their RMSE to the input [N, C]
        (``sample=False``: decoded from the posterior means)."""
        x = tf.cast(x, tf.float32)
        n, c = tf.shape(x)[0], self.classes
        share = tf.repeat(self.trunk(x, training=False), c, axis=0)  # [N*C, hidden], input-major
        labels = tf.tile(tf.eye(c), [n, 1])
        mean, scale = self.head([share, labels], training=False)
        if self.random and sample:
            seeds = tf.stack([tf.cast(seed, tf.int32), tf.constant(_SEED_SALT, tf.int32)])
            mean = mean + self.sampling_scale * scale * tf.random.stateless_normal(tf.shape(mean), seeds)
        flat = tf.cast(self.decoder([mean, labels], training=False), tf.float32)  # [N*C, 28, 28, 1]
        rmse = tf.reshape(losses.rmse_per_image(tf.repeat(x, c, axis=0), flat), [n, c])
        return tf.reshape(flat, tf.concat([[n, c], tf.shape(x)[1:]], 0)), rmse

    def call(self, x, seed=0):
        images, rmse = self.reconstructions(x, seed)
        best = tf.argmin(rmse, axis=1, output_type=tf.int32)
        return {"images": tf.gather(images, best, axis=1, batch_dims=1),
                "errors": tf.reduce_min(rmse, axis=1), "class": best}

    def surrogate(self, x):
        """A smooth stand-in of the choice for BPDA: the posterior-mean reconstructions of every class,
        weighted by softmax(-RMSE / ``soft_temperature``) (the argmin as the temperature goes to 0)."""
        images, rmse = self.reconstructions(x, sample=False)
        weights = tf.nn.softmax(-rmse / self.soft_temperature, axis=1)
        return tf.einsum("nc,nc...->n...", weights, images)

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, ("trunk", "head", "decoder")))
        config.update(sampling_scale=self.sampling_scale, soft_temperature=self.soft_temperature)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, ("trunk", "head", "decoder")))
