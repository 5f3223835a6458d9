"""FM-Defense's training (Wang et al. 2020 Sections III.B and III.D) as one keras.Model."""

import keras
import tensorflow as tf

from tfdefense.families.fmdefense import builders, losses
from tfdefense.defense.serialization import deserialize_parts, serialize_parts
from tfdefense.defense.replicas import descend, ReplicaSeedGenerator

PARTS = ("encoder", "decoder", "discriminator", "dgmm", "prior", "shared_encoder", "enhanced_decoder")
METRICS = ("loss", "reconstruction", "kl", "tc", "d_loss", "gm_cls", "gm_lkd", "gm_accuracy",
           "enhanced_reconstruction", "enhanced_kl")


@keras.saving.register_keras_serializable(package="tfdefense")
class FMDefense(keras.Model):
    """The combo-VAE (detector side) and the enhanced combo-VAE (purifier side), trained together.

    Every step:

    1. combo-VAE (Eq. 8): the encoder and decoder descend
       L_R + KL + ``gamma`` * TC, the TC discriminator its cross-entropy
       on codes against permuted codes (its own optimizer);
    2. for the first ``dgmm_steps`` steps, the DGMM (code network and mixture
       prior) descends L_cls + ``lambda_lkd`` * L_lkd (Eq. 12); after that it
       is frozen and, second stage, the class-shared encoder E_s and the
       enhanced decoder descend L_R + KL of [z_s, z_u] with z_u from the frozen
       DGMM (Section III.D: "two stages").

    The step counter is the discriminator optimizer's iteration count, saved
    with every checkpoint, so a resumed run stays in its stage.

    Args:
        encoder, decoder, discriminator: the combo-VAE (`builders`).
        dgmm, prior: the class-unique code network and its `GaussianMixturePrior`.
        shared_encoder, enhanced_decoder: E_s and the decoder on [z_s, z_u].
        gamma, lambda_lkd: loss weights (40 and 0.1 in the paper).
        dgmm_steps: steps of the first stage.
        seed: seed of the sampling noise and permutations.

    Example:
        >>> model = FMDefense.from_config_dict({"latent_dim": 2, "code_dim": 2, "filters": 2,
        ...                                     "hidden": 8, "disc_units": 8})
        >>> model.compile()
    """

    def __init__(self, encoder, decoder, discriminator, dgmm, prior, shared_encoder, enhanced_decoder,
                 gamma=40.0, lambda_lkd=0.1, dgmm_steps=1000, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.discriminator = encoder, decoder, discriminator
        self.dgmm, self.prior = dgmm, prior
        self.shared_encoder, self.enhanced_decoder = shared_encoder, enhanced_decoder
        self.gamma, self.lambda_lkd, self.dgmm_steps = float(gamma), float(lambda_lkd), int(dgmm_steps)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRICS}
        self.built = True

    @classmethod
    def from_config_dict(cls, config):
        """Builds every network from an entry's ``config`` dict."""
        config = dict(config)
        latent, codes = config.pop("latent_dim", 10), config.pop("code_dim", 10)
        filters, hidden = config.pop("filters", 32), config.pop("hidden", 128)
        units, depth = config.pop("disc_units", 1000), config.pop("disc_depth", 6)
        shape = tuple(config.pop("image_shape", builders.MNIST_SHAPE))
        classes = config.pop("num_classes", builders.CLASSES)
        return cls(builders.encoder(latent, filters, hidden, shape), builders.decoder(latent, filters, hidden, shape),
                   builders.tc_discriminator(latent, units, depth), builders.code_network(codes, filters, hidden, shape),
                   builders.GaussianMixturePrior(classes=classes, dim=codes, name="prior"),
                   builders.encoder(latent, filters, hidden, shape, name="shared_encoder"),
                   builders.decoder(latent + codes, filters, hidden, shape, name="enhanced_decoder"), **config)

    def compile(self, optimizer=None, d_optimizer=None, g_optimizer=None, e_optimizer=None, **kwargs):
        """One Adam per part (FactorVAE's settings: 1e-4; the discriminator 1e-4 with betas 0.5, 0.9)."""
        super().compile(optimizer=optimizer or keras.optimizers.Adam(1e-4), **kwargs)
        lr = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(lr)
        self.e_optimizer = e_optimizer or keras.optimizers.Adam(lr)
        # Built now: the stage optimizers first apply inside a tf.cond branch, where no variable may be created.
        self.optimizer.build(self._vae_variables())
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self._dgmm_variables())
        self.e_optimizer.build(self._enhanced_variables())

    def _vae_variables(self):
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    def _dgmm_variables(self):
        return self.dgmm.trainable_variables + self.prior.trainable_variables

    def _enhanced_variables(self):
        return self.shared_encoder.trainable_variables + self.enhanced_decoder.trainable_variables

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _sample(self, mean, log_var, training):
        if not training:
            return mean
        return mean + tf.exp(0.5 * log_var) * keras.random.normal(tf.shape(mean), seed=self.seed_generator)

    def call(self, x, training=False):
        """Combo-VAE reconstruction and enhanced reconstruction of ``x`` (posterior means at inference)."""
        z = self._sample(*self.encoder(x, training=training), training)
        return self.decoder(z, training=training), self.enhanced(x, training)[0]

    def enhanced(self, x, training=False):
        """(reconstruction from [z_s, z_u], mean of z_s, log-variance of z_s)."""
        mean, log_var = self.shared_encoder(x, training=training)
        z_u = tf.stop_gradient(self.dgmm(x, training=False))
        return self.enhanced_decoder(tf.concat([self._sample(mean, log_var, training), z_u], -1),
                                     training=training), mean, log_var

    # -- loss terms -----------------------------------------------------------------------------
    def _vae_terms(self, x, training):
        mean, log_var = self.encoder(x, training=training)
        z = self._sample(mean, log_var, training)
        tc = losses.total_correlation(self.discriminator(z, training=False))
        terms = {"reconstruction": losses.reconstruction(x, self.decoder(z, training=training)),
                 "kl": losses.kl_to_standard_normal(mean, log_var), "tc": tc}
        terms["loss"] = terms["reconstruction"] + terms["kl"] + self.gamma * tc
        return terms, z

    def _discriminator_loss(self, z):
        z = tf.stop_gradient(z)
        permuted = losses.permute_dims(z, keras.random.uniform(tf.shape(z), seed=self.seed_generator))
        return losses.discriminator(self.discriminator(z, training=True), self.discriminator(permuted, training=True))

    def _dgmm_terms(self, x, y, training):
        log_likelihoods = self.prior(self.dgmm(x, training=training))
        cls, lkd = losses.mixture_classification(y, log_likelihoods), losses.mixture_likelihood(y, log_likelihoods)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(log_likelihoods, -1, output_type=tf.int32),
                                                   tf.cast(y, tf.int32)), tf.float32))
        return {"gm_cls": cls, "gm_lkd": lkd, "gm_accuracy": accuracy}, cls + self.lambda_lkd * lkd

    def _enhanced_terms(self, x, training):
        x_hat, mean, log_var = self.enhanced(x, training)
        terms = {"enhanced_reconstruction": losses.reconstruction(x, x_hat),
                 "enhanced_kl": losses.kl_to_standard_normal(mean, log_var)}
        return terms, terms["enhanced_reconstruction"] + terms["enhanced_kl"]

    # -- steps ----------------------------------------------------------------------------------
    def _record(self, terms):
        for name, value in terms.items():
            self.trackers[name].update_state(value)

    def _results(self):
        return {name: t.result() for name, t in self.trackers.items()}

    def _descend(self, optimizer, variables, fn):
        with tf.GradientTape() as tape:
            terms, loss = fn()
        descend(optimizer, tape, loss, variables)
        self._record(terms)
        return tf.constant(0)

    def train_step(self, data):
        x, y = data
        first_stage = self.d_optimizer.iterations < self.dgmm_steps
        with tf.GradientTape() as tape:
            terms, z = self._vae_terms(x, training=True)
        variables = self._vae_variables()
        descend(self.optimizer, tape, terms["loss"], variables)
        with tf.GradientTape() as tape:
            terms["d_loss"] = self._discriminator_loss(z)
        d_vars = self.discriminator.trainable_variables
        descend(self.d_optimizer, tape, terms["d_loss"], d_vars)
        self._record(terms)
        tf.cond(first_stage,
                lambda: self._descend(self.g_optimizer, self._dgmm_variables(),
                                      lambda: self._dgmm_terms(x, y, True)),
                lambda: self._descend(self.e_optimizer, self._enhanced_variables(),
                                      lambda: self._enhanced_terms(x, True)))
        return self._results()

    def test_step(self, data):
        x, y = data
        terms, z = self._vae_terms(x, training=False)
        terms["d_loss"] = self._discriminator_loss(z)
        terms.update(self._dgmm_terms(x, y, False)[0])
        terms.update(self._enhanced_terms(x, False)[0])
        self._record(terms)
        return self._results()

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config.update({"gamma": self.gamma, "lambda_lkd": self.lambda_lkd, "dgmm_steps": self.dgmm_steps,
                       "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
