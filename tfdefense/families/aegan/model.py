"""The AE-GAN training algorithm (Algorithm 1 of AE-GAN+rs (anon.)) as a keras.Model."""

import keras
import tensorflow as tf

from tfdefense.families.aegan import builders, losses
from tfdefense.utils import batching
from tfdefense.defense.serialization import deserialize_parts, serialize_parts
from tfdefense.defense.replicas import descend, global_gradients, ReplicaSeedGenerator

PARTS = ("encoder", "decoder", "discriminator")
NOISE_KINDS = ("gaussian", "sign")


@keras.saving.register_keras_serializable(package="tfdefense")
class AEGAN(keras.Model):
    """Encoder F, decoder G and discriminator D trained together.

    Each step: D ascends log D(x) + log(1 - D(G(z))) for z ~ U(-1, 1)^d; G
    descends the adversarial term plus the reconstruction ||G(F(x + e)) - x||^2;
    F descends the reconstruction. With noise regularisation (+r) each image
    gets e ~ N(0, sigma^2), sigma ~ U(0, noise_eta) (``noise="gaussian"``, the
    paper's), or e = sigma * s with a random sign s = +-1 per pixel
    (``noise="sign"``: of the same scale, shaped like an FGSM perturbation).

    The Table 3 ablations are settings, not copies: ``adversarial=False`` is
    the plain auto-encoder (no D), ``noise_eta=0`` is AE-GAN without +r.

    Args:
        encoder, decoder, discriminator: the sub-models (built by `builders`).
        latent_dim: code size (128).
        noise_eta: upper bound of the noise scale sigma (+r); 0 disables it.
        noise: "gaussian" (Equation 5) or "sign".
        adversarial: train with D and the adversarial loss.
        adversarial_weight: weight of the generator's adversarial term.

    Example:
        >>> model = AEGAN.from_config_dict({"latent_dim": 8, "filters": 4})
        >>> model.compile()
        >>> history = model.fit(x_train, epochs=1)     # doctest: +SKIP

    Reference:
        AE-GAN+rs, Algorithm 1 and Equation 5.
    """

    def __init__(self, encoder, decoder, discriminator=None, latent_dim=128, noise_eta=0.3,
                 adversarial=True, adversarial_weight=1.0, noise="gaussian", seed=0, **kwargs):
        super().__init__(**kwargs)
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}; got {noise!r}.")
        if adversarial and discriminator is None:
            raise ValueError("adversarial=True needs a discriminator.")
        self.encoder = encoder
        self.decoder = decoder
        self.discriminator = discriminator if adversarial else None
        self.latent_dim = latent_dim
        self.noise_eta = float(noise_eta)
        self.noise = noise
        self.adversarial = bool(adversarial)
        self.adversarial_weight = float(adversarial_weight)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_adv_tracker = keras.metrics.Mean(name="g_adv_loss")
        self.recon_tracker = keras.metrics.Mean(name="recon_loss")

    @classmethod
    def from_config_dict(cls, config):
        """Builds the sub-models from an entry's ``config`` dict and the model."""
        config = dict(config)
        latent_dim, filters = config.pop("latent_dim", 128), config.pop("filters", 64)
        shape = tuple(config.pop("image_shape", builders.MNIST_SHAPE))
        config.pop("num_classes", None)
        adversarial = config.get("adversarial", True)
        return cls(builders.encoder(latent_dim, filters, input_shape=shape),
                   builders.decoder(latent_dim, filters, image_shape=shape),
                   builders.discriminator(filters, input_shape=shape) if adversarial else None,
                   latent_dim=latent_dim, **config)

    def compile(self, d_optimizer=None, g_optimizer=None, e_optimizer=None, **kwargs):
        """Takes one optimizer per part (Adam 2e-4, beta_1 0.5 by default)."""
        super().compile(**kwargs)
        make = lambda: keras.optimizers.Adam(2e-4, beta_1=0.5)  # noqa: E731
        self.d_optimizer = d_optimizer or make()
        self.g_optimizer = g_optimizer or make()
        self.e_optimizer = e_optimizer or make()
        # Built now so a checkpoint can be loaded into them before the first step.
        self.g_optimizer.build(self.decoder.trainable_variables)
        self.e_optimizer.build(self.encoder.trainable_variables)
        if self.adversarial:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        trackers = [self.recon_tracker]
        return trackers + [self.d_loss_tracker, self.g_adv_tracker] if self.adversarial else trackers

    def call(self, x, training=False):
        """G(F(x)): the cheap reconstruction."""
        return self.decoder(self.encoder(x, training=training), training=training)

    def recalibrate_decoder_statistics(self, x, batch_size=200, momentum=0.9):
        """Re-estimates the decoder's BatchNorm moving statistics on G(F(x)).

        During training the decoder also runs on prior samples G(z) for the
        adversarial loss, so its moving statistics mix two input distributions.
        At inference it only decodes codes near F(x), and with the mixed
        statistics the reconstruction error is about 2.7x larger (measured on
        MNIST validation images). No trainable weight changes.

        Args:
            x: training images (a few thousand are enough).
        """
        norms = [layer for layer in self.decoder.layers if isinstance(layer, keras.layers.BatchNormalization)]
        saved = [layer.momentum for layer in norms]
        try:
            for layer in norms:
                layer.momentum = momentum
            for batch in batching.batches(len(x), batch_size):
                codes = self.encoder(x[batch], training=False)
                self.decoder(codes, training=True)
        finally:
            for layer, m in zip(norms, saved):
                layer.momentum = m

    def _noisy(self, x):
        if self.noise_eta <= 0:
            return x
        batch = tf.shape(x)[0]
        sigma = keras.random.uniform((batch, 1, 1, 1), 0.0, self.noise_eta, seed=self.seed_generator)
        if self.noise == "sign":
            unit = tf.sign(keras.random.uniform(tf.shape(x), -1.0, 1.0, seed=self.seed_generator))
        else:
            unit = keras.random.normal(tf.shape(x), seed=self.seed_generator)
        noise = unit * sigma
        return tf.clip_by_value(x + noise, 0.0, 1.0)

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        batch = tf.shape(x)[0]
        if self.adversarial:
            z = keras.random.uniform((batch, self.latent_dim), -1.0, 1.0, seed=self.seed_generator)
            with tf.GradientTape() as tape:
                fake = self.decoder(z, training=True)
                d_loss = losses.discriminator_loss(self.discriminator(x, training=True),
                                                   self.discriminator(fake, training=True))
            d_vars = self.discriminator.trainable_variables
            descend(self.d_optimizer, tape, d_loss, d_vars)
            self.d_loss_tracker.update_state(d_loss)

        x_noisy = self._noisy(x)
        with tf.GradientTape() as tape:
            recon = losses.reconstruction_loss(x, self(x_noisy, training=True))
            total = recon
            if self.adversarial:
                z = keras.random.uniform((batch, self.latent_dim), -1.0, 1.0, seed=self.seed_generator)
                g_adv = losses.generator_loss(self.discriminator(self.decoder(z, training=True),
                                                                 training=True))
                total = recon + self.adversarial_weight * g_adv
        g_vars, e_vars = self.decoder.trainable_variables, self.encoder.trainable_variables
        grads = global_gradients(tape, total, g_vars + e_vars)
        # The adversarial term does not depend on F, so F's gradient is the reconstruction's.
        self.g_optimizer.apply_gradients(zip(grads[:len(g_vars)], g_vars))
        self.e_optimizer.apply_gradients(zip(grads[len(g_vars):], e_vars))
        self.recon_tracker.update_state(recon)
        if self.adversarial:
            self.g_adv_tracker.update_state(g_adv)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        self.recon_tracker.update_state(losses.reconstruction_loss(x, self(x, training=False)))
        return {self.recon_tracker.name: self.recon_tracker.result()}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config.update({
            "latent_dim": self.latent_dim, "noise_eta": self.noise_eta, "noise": self.noise,
            "adversarial": self.adversarial, "adversarial_weight": self.adversarial_weight,
            "seed": self.seed,
        })
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
