"""APE-GAN's training (Section 3 and 4.1 of Shen et al. 2017) as a keras.Model."""

import keras
import tensorflow as tf

from tfdefense.families.apegan import builders, losses
from tfdefense.defense.serialization import deserialize_parts, serialize_parts
from tfdefense.defense.replicas import descend

PARTS = ("generator", "discriminator", "classifier")


@keras.saving.register_keras_serializable(package="tfdefense")
class APEGAN(keras.Model):
    """Generator G (adversarial image -> clean image) trained against a discriminator D.

    Each step crafts FGSM examples of the batch on the frozen ``classifier``
    (the model the defense protects; nothing is stored on disk), updates D
    once on clean images against G(x_adv), then G ``generator_steps`` times
    on 0.7 * MSE(G(x_adv), x) + 0.3 * -log D(G(x_adv)).

    Args:
        generator, discriminator: the sub-models (built by `builders`).
        classifier: frozen logits model the FGSM examples are crafted on.
        eps: FGSM budget (0.3 on MNIST).
        mse_weight, adversarial_weight: xi_1 and xi_2 of Eq. 12.
        generator_steps: generator updates per discriminator update (2).

    Example:
        >>> model = APEGAN(builders.generator(4), builders.discriminator(4), classifier)  # doctest: +SKIP
        >>> model.compile()
        >>> model.fit(dataset_of_x_and_y, epochs=2)                                      # doctest: +SKIP

    Reference:
        Shen et al., APE-GAN (2017), Eqs. 10-14, Section 4.1.3.
    """

    def __init__(self, generator, discriminator, classifier, eps=0.3, mse_weight=0.7, adversarial_weight=0.3,
                 generator_steps=2, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.classifier = classifier
        self.classifier.trainable = False
        self.eps = float(eps)
        self.mse_weight = float(mse_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.generator_steps = int(generator_steps)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.mse_tracker = keras.metrics.Mean(name="mse")

    @classmethod
    def from_config_dict(cls, config, classifier):
        """Builds G and D from an entry's ``config`` dict, around ``classifier``."""
        config = {k: v for k, v in config.items() if k not in ("classifier", "num_classes")}
        filters = config.pop("filters", 64)
        shape = tuple(config.pop("image_shape", builders.MNIST_SHAPE))
        return cls(builders.generator(filters, shape), builders.discriminator(filters, shape), classifier, **config)

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """One Adam per network (2e-4, the paper's Section 4.1.3)."""
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        # Built now so a checkpoint can be loaded into them before the first step.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.mse_tracker]

    def call(self, x, training=False):
        """G(x): the purified image."""
        return self.generator(x, training=training)

    def fgsm(self, x, y):
        """FGSM examples of ``x`` on the frozen classifier (eps ``self.eps``), in graph."""
        x = tf.convert_to_tensor(x, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = keras.losses.sparse_categorical_crossentropy(
                y, tf.cast(self.classifier(x, training=False), tf.float32), from_logits=True)
        return tf.stop_gradient(tf.clip_by_value(x + self.eps * tf.sign(tape.gradient(loss, x)), 0.0, 1.0))

    def train_step(self, data):
        x, y = data
        x_adv = self.fgsm(x, y)
        with tf.GradientTape() as tape:
            d_loss = losses.discriminator_loss(self.discriminator(x, training=True),
                                               self.discriminator(self.generator(x_adv, training=True),
                                                                  training=True))
        d_vars = self.discriminator.trainable_variables
        descend(self.d_optimizer, tape, d_loss, d_vars)
        g_vars = self.generator.trainable_variables
        for _ in range(self.generator_steps):  # the paper runs G twice so D's loss does not reach zero
            with tf.GradientTape() as tape:
                purified = self.generator(x_adv, training=True)
                mse = losses.pixel_mse(x, purified)
                g_loss = losses.ape_loss(x, purified, self.discriminator(purified, training=True),
                                         self.mse_weight, self.adversarial_weight)
            descend(self.g_optimizer, tape, g_loss, g_vars)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.mse_tracker.update_state(mse)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        self.mse_tracker.update_state(losses.pixel_mse(x, self.generator(self.fgsm(x, y), training=False)))
        return {self.mse_tracker.name: self.mse_tracker.result()}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config.update({"eps": self.eps, "mse_weight": self.mse_weight,
                       "adversarial_weight": self.adversarial_weight, "generator_steps": self.generator_steps})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
