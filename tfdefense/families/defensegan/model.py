"""The Defense-GAN generator's training: a WGAN with gradient penalty."""

import keras
import tensorflow as tf

from tfdefense.defense import networks
from tfdefense.families.defensegan import losses
from tfdefense.defense.serialization import deserialize_parts, serialize_parts
from tfdefense.defense.replicas import descend, ReplicaSeedGenerator

PARTS = ("generator", "critic")


@keras.saving.register_keras_serializable(package="tfdefense")
class WGANGP(keras.Model):
    """Generator G(z), z ~ N(0, I), trained against a critic C with gradient penalty.

    Each step trains the critic ``critic_steps`` times on the same real batch
    (fresh z each time), then the generator once.

    Args:
        generator: codes -> images in [0, 1] (the Defense-GAN MNIST generator,
            which AE-GAN's decoder restates).
        critic: images -> one unbounded score (no batch normalisation).
        latent_dim: code size (128).
        critic_steps: critic updates per generator update (5).
        gp_weight: gradient penalty weight (10).

    Example:
        >>> model = WGANGP.from_config_dict({"latent_dim": 8, "filters": 4})
        >>> model.compile()
        >>> history = model.fit(x_train, epochs=1)     # doctest: +SKIP

    Reference:
        Samangouei et al., Defense-GAN (ICLR 2018); Gulrajani et al., Improved
        training of Wasserstein GANs (2017).
    """

    def __init__(self, generator, critic, latent_dim=128, critic_steps=5, gp_weight=10.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.critic = critic
        self.latent_dim = int(latent_dim)
        self.critic_steps = int(critic_steps)
        self.gp_weight = float(gp_weight)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.c_loss_tracker = keras.metrics.Mean(name="c_loss")
        self.gp_tracker = keras.metrics.Mean(name="gradient_penalty")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        # Both parts are functional models that own every variable already; the
        # model's input is a code, not an image, so nothing is left to build.
        self.built = True

    @classmethod
    def from_config_dict(cls, config):
        config = dict(config)
        latent_dim, filters = config.pop("latent_dim", 128), config.pop("filters", 64)
        shape = tuple(config.pop("image_shape", networks.MNIST_SHAPE))
        config.pop("num_classes", None)
        return cls(networks.decoder(latent_dim, filters, image_shape=shape, name="generator"),
                   networks.discriminator(filters, input_shape=shape, name="critic", batch_norm=False),
                   latent_dim=latent_dim, **config)

    def compile(self, c_optimizer=None, g_optimizer=None, **kwargs):
        """Adam 1e-4, beta (0.5, 0.9) by default, as in WGAN-GP."""
        super().compile(**kwargs)
        make = lambda: keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)  # noqa: E731
        self.c_optimizer = c_optimizer or make()
        self.g_optimizer = g_optimizer or make()
        self.c_optimizer.build(self.critic.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        return [self.c_loss_tracker, self.gp_tracker, self.g_loss_tracker]

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def _codes(self, batch):
        return keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        batch = tf.shape(x)[0]
        c_vars, g_vars = self.critic.trainable_variables, self.generator.trainable_variables
        for _ in range(self.critic_steps):
            fake = self.generator(self._codes(batch), training=True)
            alpha = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                c_loss = losses.critic_loss(self.critic(x, training=True), self.critic(fake, training=True))
                gp = losses.gradient_penalty(self.critic, x, fake, alpha)
                total = c_loss + self.gp_weight * gp
            descend(self.c_optimizer, tape, total, c_vars)
        with tf.GradientTape() as tape:
            g_loss = losses.generator_loss(self.critic(self.generator(self._codes(batch), training=True),
                                                       training=True))
        descend(self.g_optimizer, tape, g_loss, g_vars)
        self.c_loss_tracker.update_state(c_loss)
        self.gp_tracker.update_state(gp)
        self.g_loss_tracker.update_state(g_loss)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        fake = self.generator(self._codes(tf.shape(x)[0]), training=False)
        self.c_loss_tracker.update_state(losses.critic_loss(self.critic(x, training=False),
                                                            self.critic(fake, training=False)))
        return {self.c_loss_tracker.name: self.c_loss_tracker.result()}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config.update({"latent_dim": self.latent_dim, "critic_steps": self.critic_steps,
                       "gp_weight": self.gp_weight, "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
