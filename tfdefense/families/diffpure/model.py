"""DDPM training (Ho et al. 2020) of the noise-prediction UNet as a keras.Model."""

import keras
import tensorflow as tf

from tfdefense.families.diffpure import builders, schedule
from tfdefense.defense.serialization import deserialize_parts, serialize_parts
from tfdefense.defense.replicas import descend, ReplicaSeedGenerator

PARTS = ("unet",)


@keras.saving.register_keras_serializable(package="tfdefense")
class DiffusionModel(keras.Model):
    """Trains ``unet`` to predict the noise added to an image at a random timestep.

    Each step draws ``t ~ U{0..T-1}`` and ``e ~ N(0, I)`` per image, forms
    ``x_t = sqrt(abar_t) (2x - 1) + sqrt(1 - abar_t) e`` and descends
    ``mean((unet(x_t, t) - e)^2)`` (the simple loss of Ho et al., Eq. 14).
    An exponential moving average of the weights (``ema``, decay
    ``ema_decay``) is what the purifier uses, as in DDPM and DiffPure.

    Args:
        unet: ``[x_t, t] -> noise`` (`builders.noise_unet`).
        timesteps: T of the linear beta schedule.
        ema_decay: decay of the weight average.
        seed: seed of the timesteps and noise.

    Example:
        >>> model = DiffusionModel.from_config_dict({"image_shape": [28, 28, 1], "filters": 8,
        ...                                          "multipliers": [1, 2]})
        >>> model.compile()
        >>> history = model.fit(x_train, epochs=1)     # doctest: +SKIP
    """

    def __init__(self, unet, timesteps=1000, ema_decay=0.999, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.unet = unet
        self.ema = keras.models.clone_model(unet)
        self.ema.set_weights(unet.get_weights())
        self.ema.trainable = False
        self.timesteps = int(timesteps)
        self.ema_decay = float(ema_decay)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.abar = tf.constant(schedule.alpha_bars(self.timesteps))
        self.loss_tracker = keras.metrics.Mean(name="eps_mse")
        self.built = True

    @classmethod
    def from_config_dict(cls, config):
        """Builds the UNet from an entry's ``config`` dict."""
        config = dict(config)
        unet = builders.noise_unet(tuple(config.pop("image_shape")), config.pop("filters", 32),
                                   tuple(config.pop("multipliers", (1, 2, 2))))
        config.pop("num_classes", None)
        return cls(unet, **config)

    def compile(self, optimizer=None, **kwargs):
        """Adam 2e-4 (Ho et al.) unless given."""
        super().compile(optimizer=optimizer or keras.optimizers.Adam(2e-4), **kwargs)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, x, training=False):
        t = tf.zeros([tf.shape(x)[0]], tf.int32)
        return self.unet([x * 2.0 - 1.0, t], training=training)

    def noise_loss(self, x, training):
        """The simple DDPM loss on a batch of images in [0, 1]."""
        x0 = tf.cast(x, tf.float32) * 2.0 - 1.0
        n = tf.shape(x0)[0]
        t = keras.random.randint([n], 0, self.timesteps, seed=self.seed_generator, dtype="int32")
        noise = keras.random.normal(tf.shape(x0), seed=self.seed_generator)
        x_t = schedule.diffuse(x0, tf.reshape(tf.gather(self.abar, t), [-1, 1, 1, 1]), noise)
        eps = tf.cast(self.unet([x_t, t], training=training), tf.float32)
        return tf.reduce_mean(tf.square(eps - noise))

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss = self.noise_loss(x, training=True)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.unet.trainable_variables
        descend(self.optimizer, tape, scaled, variables)
        for average, weight in zip(self.ema.weights, self.unet.weights):
            average.assign(self.ema_decay * average + (1.0 - self.ema_decay) * weight)
        self.loss_tracker.update_state(loss)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        self.loss_tracker.update_state(self.noise_loss(x, training=False))
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config.update({"timesteps": self.timesteps, "ema_decay": self.ema_decay, "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
