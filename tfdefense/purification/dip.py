"""Deep Image Prior purification: no pretrained generator at all.

For each image, a small untrained conv generator G_phi with a fixed random
input is fitted to the image by Adam on ||G_phi(z) - x||^2, stopping early
(a fixed number of steps, or once the MSE falls below ``mse_stop``): a conv
net fits natural structure before noise, so the early output drops much of
an adversarial perturbation. Parameters are plain tensors inside a
`tf.while_loop`, so the purifier runs batched (one `tf.map_fn` lane per
image), is reproducible from its seed, and exports as TensorFlow ops.

Example:
    >>> from tfdefense.defense.defended import DefendedClassifier
    >>> model = DefendedClassifier(classifier, DeepImagePrior(steps=100))   # doctest: +SKIP

Reference:
    Ulyanov et al., Deep Image Prior (2018); Ilyas et al., The Robust
    Manifold Defense, Section 4.4 (Adam lr 0.01, at most 100-500 steps,
    stop when the MSE is below 0.005).
"""

import keras
import tensorflow as tf

from tfdefense.defense.contract import PurifierLayer
from tfdefense.purification.adam import adam_update


def _init_params(seed, channels, noise_channels, image_channels):
    shapes = [(3, 3, noise_channels, channels), (3, 3, channels, channels), (3, 3, channels, image_channels)]
    params = []
    for i, shape in enumerate(shapes):
        limit = (6.0 / (shape[0] * shape[1] * (shape[2] + shape[3]))) ** 0.5  # Glorot uniform
        params.append(tf.random.stateless_uniform(shape, tf.stack([seed, i + 1]), -limit, limit))
        params.append(tf.zeros([shape[3]]))
    return params


def _generate(params, z, size):
    """Unbounded output: a sigmoid output saturated within 20 Adam steps on
    MNIST's mostly black images (every pixel pushed to 0, then no gradient),
    so the fit runs on a linear output and only the result is clipped."""
    w1, b1, w2, b2, w3, b3 = params
    h = tf.nn.leaky_relu(tf.nn.conv2d(z, w1, 1, "SAME") + b1, 0.2)
    h = tf.image.resize(h, [(size[0] + 1) // 2, (size[1] + 1) // 2], method="nearest")
    h = tf.nn.leaky_relu(tf.nn.conv2d(h, w2, 1, "SAME") + b2, 0.2)
    h = tf.image.resize(h, size, method="nearest")
    return tf.nn.conv2d(h, w3, 1, "SAME") + b3


def deep_image_prior(x, *, steps=500, learning_rate=0.01, mse_stop=0.005, channels=32, noise_channels=8, seed=0):
    """Purifies float32 images [N, H, W, C]; returns (images, final per-image MSE)."""
    if steps < 0 or not learning_rate > 0:
        raise ValueError("steps must be >= 0 and learning_rate > 0.")
    seed = tf.cast(seed, tf.int32)
    height, width, image_channels = (int(d) for d in x.shape[1:])
    size = [height, width]
    z = tf.random.stateless_uniform([1, (height + 3) // 4, (width + 3) // 4, noise_channels], tf.stack([seed, 0]),
                                    0.0, 0.1)

    def fit_one(image):
        image = image[None]
        params = _init_params(seed, channels, noise_channels, image_channels)
        zeros = [tf.zeros_like(p) for p in params]

        def mse(ps):
            return tf.reduce_mean(tf.square(_generate(ps, z, size) - image))

        def cond(k, ps, m, v, err):
            return tf.logical_and(k < steps, err >= mse_stop)

        def body(k, ps, m, v, err):
            with tf.GradientTape() as tape:
                tape.watch(ps)
                loss = mse(ps)
            ps, m, v = adam_update(ps, tape.gradient(loss, ps), m, v, k, learning_rate)
            return k + 1, ps, m, v, loss

        _, params, _, _, _ = tf.while_loop(cond, body, (tf.constant(0), params, zeros, list(zeros),
                                                        tf.constant(1.0)))
        out = tf.clip_by_value(_generate(params, z, size)[0], 0.0, 1.0)
        return out, tf.reduce_mean(tf.square(out - image[0]))

    images, errors = tf.map_fn(fit_one, tf.cast(x, tf.float32),
                               fn_output_signature=(tf.TensorSpec([height, width, image_channels], tf.float32),
                                                    tf.TensorSpec([], tf.float32)))
    return images, errors


@keras.saving.register_keras_serializable(package="tfdefense")
class DeepImagePrior(PurifierLayer):
    """`deep_image_prior` as a purifier for `DefendedClassifier` (no encoder, no decoder).

    Its randomness is the generator's initialisation and input, drawn from
    ``seed``; white-box evaluation therefore uses identity BPDA with EOT.
    """

    @property
    def random(self):
        return True

    def __init__(self, steps=500, learning_rate=0.01, mse_stop=0.005, channels=32, **kwargs):
        super().__init__(**kwargs)
        self.steps = int(steps)
        self.learning_rate = float(learning_rate)
        self.mse_stop = float(mse_stop)
        self.channels = int(channels)
        self._run = tf.function(self._purify, reduce_retracing=True)
        self.built = True

    def _purify(self, x, seed):
        images, errors = deep_image_prior(x, steps=self.steps, learning_rate=self.learning_rate,
                                          mse_stop=self.mse_stop, channels=self.channels, seed=seed)
        return {"images": images, "codes": tf.zeros([tf.shape(x)[0], 0]), "errors": errors}

    def call(self, x, seed=0):
        return self._run(tf.cast(x, tf.float32), tf.convert_to_tensor(seed, tf.int32))

    def get_config(self):
        config = super().get_config()
        config.update({"steps": self.steps, "learning_rate": self.learning_rate, "mse_stop": self.mse_stop,
                       "channels": self.channels})
        return config
