"""PuVAE's training (Hwang et al. 2019; Wester & Thisted 2020 Section 3.1) as a keras.Model."""

import keras
import tensorflow as tf

from tfdefense.families.puvae import builders, losses
from tfdefense.defense.serialization import deserialize_parts, serialize_parts
from tfdefense.defense.replicas import descend, ReplicaSeedGenerator

PARTS = ("trunk", "head", "decoder", "classifier")


@keras.saving.register_keras_serializable(package="tfdefense")
class PuVAE(keras.Model):
    """A class-conditional VAE guided by a frozen classifier.

    Each step encodes the batch with its true labels, samples z from
    q(z | x, y), decodes with the same labels and descends
    ``reconstruction_weight * MSE + kl_weight * KL + ce_weight * CE``, where CE
    is the frozen ``classifier``'s cross-entropy on the reconstruction.

    Args:
        trunk, head, decoder: the networks (built by `builders`).
        classifier: frozen logits model (classifier A of the zoo).
        reconstruction_weight, kl_weight, ce_weight: the loss weights.
        seed: seed of the sampling noise.

    Example:
        >>> model = PuVAE.from_config_dict({"latent_dim": 4, "filters": 2, "hidden": 8}, classifier)  # doctest: +SKIP
        >>> model.compile()                                                                        # doctest: +SKIP
        >>> model.fit(dataset_of_x_and_y, epochs=1)                                                # doctest: +SKIP
    """

    def __init__(self, trunk, head, decoder, classifier, reconstruction_weight=1.0, kl_weight=1e-3,
                 ce_weight=0.1, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.trunk, self.head, self.decoder = trunk, head, decoder
        self.classifier = classifier
        self.classifier.trainable = False
        self.classes = int(decoder.inputs[1].shape[-1])
        self.reconstruction_weight = float(reconstruction_weight)
        self.kl_weight = float(kl_weight)
        self.ce_weight = float(ce_weight)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "mse", "kl", "ce")}
        self.built = True  # the networks are functional models, built already; call() needs labels too

    @classmethod
    def from_config_dict(cls, config, classifier):
        """Builds the networks from an entry's ``config`` dict, around ``classifier``."""
        config = {k: v for k, v in config.items() if k != "classifier"}
        latent_dim, filters = config.pop("latent_dim", 32), config.pop("filters", 32)
        hidden, output = config.pop("hidden", 1024), config.pop("output", "sigmoid")
        shape = tuple(config.pop("image_shape", builders.MNIST_SHAPE))
        classes = config.pop("num_classes", builders.CLASSES)
        return cls(builders.trunk(filters, hidden, shape), builders.head(latent_dim, hidden, classes),
                   builders.decoder(latent_dim, filters, classes, output=output, image_shape=shape), classifier,
                   **config)

    def compile(self, optimizer=None, **kwargs):
        super().compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), **kwargs)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def posterior(self, x, y, training=False):
        """(mean, scale) of q(z | x, y) for integer labels ``y``."""
        onehot = tf.one_hot(tf.cast(y, tf.int32), self.classes)
        return self.head([self.trunk(x, training=training), onehot], training=training)

    def call(self, inputs, training=False):
        """Reconstruction of ``x`` conditioned on its labels ``y`` (inputs = (x, y)); sampled when training."""
        x, y = inputs
        mean, scale = self.posterior(x, y, training)
        z = mean + scale * keras.random.normal(tf.shape(mean), seed=self.seed_generator) if training else mean
        return self.decoder([z, tf.one_hot(tf.cast(y, tf.int32), self.classes)], training=training), mean, scale

    def _loss_terms(self, x, y, training):
        x_hat, mean, scale = self((x, y), training=training)
        terms = {"mse": losses.reconstruction_mse(x, x_hat), "kl": losses.kl_to_standard_normal(mean, scale),
                 "ce": losses.classifier_ce(y, self.classifier(x_hat, training=False))}
        terms["loss"] = (self.reconstruction_weight * terms["mse"] + self.kl_weight * terms["kl"]
                         + self.ce_weight * terms["ce"])
        return terms

    def _record(self, terms):
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            terms = self._loss_terms(x, y, training=True)
        variables = self.trunk.trainable_variables + self.head.trainable_variables + self.decoder.trainable_variables
        descend(self.optimizer, tape, terms["loss"], variables)
        return self._record(terms)

    def test_step(self, data):
        x, y = data
        return self._record(self._loss_terms(x, y, training=False))

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config.update({"reconstruction_weight": self.reconstruction_weight, "kl_weight": self.kl_weight,
                       "ce_weight": self.ce_weight, "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
