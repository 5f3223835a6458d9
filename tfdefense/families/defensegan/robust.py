"""Adversarial training of a classifier on the generator's manifold.

Each step adds, to the cross-entropy on real images, the distance between the
classifier's outputs on min-max pairs (G(z), G(z')) found by a few steps of
the overpowered attack from fresh random codes: the classifier learns to
soften the decision boundaries that the attack exploits.

The paper runs 500 attack steps per training step on a GPU; on 2 CPU cores we
default to fewer (``attack_steps``) and fine-tune the pretrained classifier
instead of training from scratch. Both are settings of the entry.

Reference:
    Ilyas et al., The Robust Manifold Defense, Section 2.3 and 4.3 (Eq. 10-11).
"""

import keras
import numpy as np
import tensorflow as tf

from tfdefense.families.defensegan.minmax import _terms, minmax_pairs
from tfdefense.defense.serialization import deserialize_parts, serialize_parts
from tfdefense.defense.replicas import descend, ReplicaSeedGenerator

PARTS = ("classifier", "generator")


@keras.saving.register_keras_serializable(package="tfdefense")
class ManifoldAdversarialTraining(keras.Model):
    """Trains ``classifier``; ``generator`` stays frozen.

    Args:
        classifier: images -> logits (trained).
        generator: codes -> images (frozen).
        mu: weight of the adversariality loss (1 - mu on cross-entropy).
        attack_steps: min-max steps per training step.
        pairs: min-max pairs per training step.
        eta2_per_pixel: the attack's L2 budget per pixel.
    """

    def __init__(self, classifier, generator, mu=0.5, attack_steps=20, pairs=32, eta2_per_pixel=2e-4, seed=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.generator = generator
        self.generator.trainable = False
        self.mu = float(mu)
        self.attack_steps = int(attack_steps)
        self.pairs = int(pairs)
        self.eta2_per_pixel = float(eta2_per_pixel)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.ce_tracker = keras.metrics.Mean(name="ce_loss")
        self.adv_tracker = keras.metrics.Mean(name="adversariality")
        self.acc_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [self.ce_tracker, self.adv_tracker, self.acc_tracker]

    def call(self, x, training=False):
        return self.classifier(x, training=training)

    def train_step(self, data):
        x, y = data
        z = keras.random.normal((self.pairs, self.latent_dim), seed=self.seed_generator)
        z2 = z + 0.01 * keras.random.normal((self.pairs, self.latent_dim), seed=self.seed_generator)
        eta2 = self.eta2_per_pixel * float(np.prod(self.generator.outputs[0].shape[1:]))
        z, z2 = minmax_pairs(self.generator, self.classifier, z, z2, steps=self.attack_steps, eta2=eta2)
        variables = self.classifier.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.classifier(x, training=True)
            ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            out_dist, _, _, _ = _terms(self.generator, self.classifier, z, z2)
            adversariality = tf.reduce_mean(out_dist)
            loss = (1.0 - self.mu) * ce + self.mu * adversariality
        descend(self.optimizer, tape, loss, variables)
        self.ce_tracker.update_state(ce)
        self.adv_tracker.update_state(adversariality)
        self.acc_tracker.update_state(y, logits)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        logits = self.classifier(x, training=False)
        self.ce_tracker.update_state(tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))
        self.acc_tracker.update_state(y, logits)
        return {m.name: m.result() for m in (self.ce_tracker, self.acc_tracker)}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config.update({"mu": self.mu, "attack_steps": self.attack_steps, "pairs": self.pairs,
                       "eta2_per_pixel": self.eta2_per_pixel, "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
