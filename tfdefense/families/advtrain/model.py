"""Adversarial training (Madry et al. 2018; Wong et al. 2020) as a keras.Model."""

import keras
import tensorflow as tf

from tfdefense.defense.serialization import deserialize_parts, serialize_parts
from tfdefense.defense.replicas import descend, ReplicaSeedGenerator


def linf_attack(classifier, x, y, *, eps, step_size, steps, seed):
    """PGD with a uniform random start in the Linf ball, as TensorFlow ops (the inner maximisation).

    ``steps=1`` with ``step_size=1.25 * eps`` is FGSM with a random start (Wong et al. 2020).
    The classifier runs in inference mode (no dropout) while it is attacked.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    x_adv = tf.clip_by_value(x + tf.random.stateless_uniform(tf.shape(x), seed, -eps, eps), 0.0, 1.0)
    for _ in range(steps):  # a Python loop: steps is a fixed setting, and XLA-free unrolling is fast here
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = keras.losses.sparse_categorical_crossentropy(
                y, tf.cast(classifier(x_adv, training=False), tf.float32), from_logits=True)
        x_adv = x_adv + step_size * tf.sign(tape.gradient(loss, x_adv))
        x_adv = tf.clip_by_value(tf.clip_by_value(x_adv, x - eps, x + eps), 0.0, 1.0)
    return tf.stop_gradient(x_adv)


@keras.saving.register_keras_serializable(package="tfdefense")
class AdversarialTraining(keras.Model):
    """Trains ``classifier`` on adversarial examples of each batch, made inside the step.

    Args:
        classifier: the logits model being trained (classifier A).
        eps: Linf budget (0.3 on MNIST).
        step_size: the attack's step (0.01 for Madry's 40-step PGD).
        steps: attack steps (40 for PGD; 1 with step 1.25 * eps for FGSM-RS).
        clean_weight: weight of the clean cross-entropy (0: adversarial examples only, as Madry).
        eps_warmup_steps: the budget (and the step, in proportion) grows linearly from 0 to ``eps``
            over this many optimizer steps, then stays; 0 starts at ``eps``. From scratch at eps
            0.3, classifier A can collapse to a constant output without it (loss ln 10).
        seed: seed of the random starts.

    Example:
        >>> model = AdversarialTraining(classifier_a(), steps=40)   # doctest: +SKIP
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> model.fit(dataset_of_x_and_y, epochs=10)                # doctest: +SKIP

    Reference:
        Madry et al., Towards deep learning models resistant to adversarial
        attacks (ICLR 2018); Wong, Rice, Kolter, Fast is better than free (ICLR 2020).
    """

    def __init__(self, classifier, eps=0.3, step_size=0.01, steps=40, clean_weight=0.0, eps_warmup_steps=0, seed=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.eps = float(eps)
        self.step_size = float(step_size)
        self.steps = int(steps)
        self.clean_weight = float(clean_weight)
        self.eps_warmup_steps = int(eps_warmup_steps)
        self.seed = int(seed)
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="adv_loss")
        self.adv_accuracy = keras.metrics.SparseCategoricalAccuracy(name="adv_accuracy")
        self.clean_accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.adv_accuracy, self.clean_accuracy]

    def call(self, x, training=False):
        return self.classifier(x, training=training)

    def _attack(self, x, y, fraction=1.0):
        seed = tf.cast(keras.random.randint((2,), 0, 2 ** 30, seed=self.seed_generator), tf.int32)
        return linf_attack(self.classifier, x, y, eps=self.eps * fraction, step_size=self.step_size * fraction,
                           steps=self.steps, seed=seed)

    def budget_fraction(self):
        """The share of ``eps`` the current training step attacks with (the warm-up ramp)."""
        if not self.eps_warmup_steps:
            return tf.constant(1.0)
        step = tf.cast(self.optimizer.iterations + 1, tf.float32)
        return tf.minimum(1.0, step / float(self.eps_warmup_steps))

    def train_step(self, data):
        x, y = data
        x_adv = self._attack(x, y, self.budget_fraction())
        with tf.GradientTape() as tape:
            logits_adv = tf.cast(self.classifier(x_adv, training=True), tf.float32)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits_adv, from_logits=True))
            if self.clean_weight:
                logits = tf.cast(self.classifier(x, training=True), tf.float32)
                loss += self.clean_weight * tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        variables = self.classifier.trainable_variables
        descend(self.optimizer, tape, loss, variables)
        self.loss_tracker.update_state(loss)
        self.adv_accuracy.update_state(y, logits_adv)
        return {m.name: m.result() for m in (self.loss_tracker, self.adv_accuracy)}  # clean accuracy: validation

    def test_step(self, data):
        x, y = data
        self.clean_accuracy.update_state(y, self.classifier(x, training=False))
        self.adv_accuracy.update_state(y, self.classifier(self._attack(x, y), training=False))
        return {m.name: m.result() for m in (self.adv_accuracy, self.clean_accuracy)}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, ("classifier",)))
        config.update({"eps": self.eps, "step_size": self.step_size, "steps": self.steps,
                       "clean_weight": self.clean_weight, "eps_warmup_steps": self.eps_warmup_steps,
                       "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, ("classifier",)))
