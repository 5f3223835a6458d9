"""MagNet's autoencoder training (Meng & Chen 2017) as a keras.Model."""

import keras
import tensorflow as tf

from tfdefense.families.magnet import builders
from tfdefense.families.magnet import losses
from tfdefense.defense.serialization import deserialize_parts, serialize_parts
from tfdefense.defense.replicas import descend, ReplicaSeedGenerator

PARTS = ("encoder", "decoder")


@keras.saving.register_keras_serializable(package="tfdefense")
class MagNetAutoencoder(keras.Model):
    """An autoencoder trained to reconstruct clean images from slightly noisy ones.

    Each step adds ``noise_volume * N(0, 1)`` to the batch (clipped to
    [0, 1]) and descends the mean squared error between the reconstruction
    and the clean batch, as MagNet trains its detector and reformer
    autoencoders (noise volume 0.1 on MNIST).

    Args:
        encoder: images -> codes (Table 6 of AE-GAN+rs (anon.), D=20 for MagNet).
        decoder: codes -> images in [0, 1].
        noise_volume: standard deviation of the training noise; 0 for none.
        seed: seed of the noise.

    Example:
        >>> model = MagNetAutoencoder.from_config_dict({"latent_dim": 4, "filters": 2})
        >>> model.compile()
        >>> history = model.fit(x_train, epochs=1)     # doctest: +SKIP

    Reference:
        Meng & Chen, MagNet: a two-pronged defense against adversarial
        examples (CCS 2017), Section 3 and Appendix; AE-GAN+rs (anon.) Appendix B
        and Table 8 (latent dimension 20).
    """

    def __init__(self, encoder, decoder, noise_volume=0.1, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.noise_volume = float(noise_volume)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="recon_mse")

    @classmethod
    def from_config_dict(cls, config):
        """Builds the sub-models from an entry's ``config`` dict."""
        config = dict(config)
        parts = builders.autoencoder(config, tuple(config.pop("image_shape", builders.MNIST_SHAPE)))
        return cls(*parts, **{k: v for k, v in config.items() if k in ("noise_volume", "seed")})

    def compile(self, optimizer=None, **kwargs):
        """Adam 2e-4 (Table 4 of AE-GAN+rs (anon.)) unless given."""
        super().compile(optimizer=optimizer or keras.optimizers.Adam(2e-4), **kwargs)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, x, training=False):
        return self.decoder(self.encoder(x, training=training), training=training)

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        noisy = x
        if self.noise_volume > 0:
            noise = keras.random.normal(tf.shape(x), seed=self.seed_generator) * self.noise_volume
            noisy = tf.clip_by_value(x + noise, 0.0, 1.0)
        with tf.GradientTape() as tape:
            loss = losses.reconstruction_mse(x, self(noisy, training=True))
        variables = self.trainable_variables
        descend(self.optimizer, tape, loss, variables)
        self.loss_tracker.update_state(loss)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        self.loss_tracker.update_state(losses.reconstruction_mse(x, self(x, training=False)))
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config.update({"noise_volume": self.noise_volume, "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
