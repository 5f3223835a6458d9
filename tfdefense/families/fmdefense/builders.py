"""FM-Defense networks: Table I of Wang et al. 2020 for 28x28 images, and the DGMM's mixture prior.

* `encoder`: 4 x Conv(4x4, stride 2)-ReLU (32, 32, 64, 64), Dense(128)-ReLU,
  Dense(2 x latent) split into a mean and a log-variance. The combo-VAE's
  encoder and the purifier's class-shared encoder E_s.
* `code_network`: the same trunk ending in K class-unique codes z_u (the DGMM).
* `decoder`: Dense(128)-ReLU, Dense(4 x 4 x 64)-ReLU, three 4x4 stride-2
  transposed convolutions with LeakyReLU (64, 32, 32: 4 -> 32 pixels) and a
  4x4 stride-1 one-channel output, sigmoid, cropped to 28 x 28. Table I's
  fourth stride-2 layer belongs to 64 x 64 images (dSprites-sized); 28 x 28
  needs three.
* `tc_discriminator`: FactorVAE's total-correlation discriminator, 6 x
  Dense(1000)-LeakyReLU(0.2) and 2 logits (the paper names it, not its shape).
* `GaussianMixturePrior`: one learned mean and diagonal scale per class
  (Eq. 9), as ``tfp.distributions.MultivariateNormalDiag`` inside a plain
  Keras layer.

Every width is a parameter so tests can build tiny ones.

Example:
    >>> encoder(latent_dim=10).output_shape
    [(None, 10), (None, 10)]
"""

import keras
import tensorflow as tf
from keras import layers

from tfdefense.defense import networks

MNIST_SHAPE = (28, 28, 1)
CLASSES = 10


def _trunk(filters, hidden, name):
    """Conv(f)-Conv(f)-Conv(2f)-Conv(2f), all 4x4 stride 2 with ReLU, Flatten, Dense(hidden)-ReLU."""
    convs = [layers.Conv2D(f, 4, strides=2, padding="same", activation="relu", name=f"{name}_conv{i + 1}")
             for i, f in enumerate((filters, filters, 2 * filters, 2 * filters))]
    return convs + [layers.Flatten(), layers.Dense(hidden, activation="relu", name=f"{name}_fc")]


def encoder(latent_dim=10, filters=32, hidden=128, input_shape=MNIST_SHAPE, name="encoder"):
    """Image -> (mean, log-variance) of q(z | x), each [N, latent_dim]."""
    x = keras.Input(input_shape)
    h = x
    for layer in _trunk(filters, hidden, name):
        h = layer(h)
    mean = layers.Dense(latent_dim, name=f"{name}_mean", dtype="float32")(h)
    log_var = layers.Dense(latent_dim, name=f"{name}_log_var", dtype="float32")(h)
    return keras.Model(x, [mean, log_var], name=name)


def code_network(code_dim=10, filters=32, hidden=128, input_shape=MNIST_SHAPE, name="dgmm"):
    """Image -> class-unique codes z_u [N, code_dim] (the DGMM's network; Table I's encoder column)."""
    return keras.Sequential([keras.Input(input_shape)] + _trunk(filters, hidden, name)
                            + [layers.Dense(code_dim, name=f"{name}_codes", dtype="float32")], name=name)


def decoder(input_dim=10, filters=32, hidden=128, image_shape=MNIST_SHAPE, name="decoder"):
    """Codes [N, input_dim] -> images [N, H, W, C] in [0, 1] (28x28: a 4x4 map upsampled to 32, cropped by 2).

    Example:
        >>> decoder(20).output_shape
        (None, 28, 28, 1)
    """
    start, crop = networks.upsampled_start(image_shape)
    return keras.Sequential([
        keras.Input((input_dim,)),
        layers.Dense(hidden, activation="relu", name=f"{name}_fc1"),
        layers.Dense(start[0] * start[1] * 2 * filters, activation="relu", name=f"{name}_fc2"),
        layers.Reshape((*start, 2 * filters)),
        *[layers.Conv2DTranspose(f, 4, strides=2, padding="same", activation=keras.activations.leaky_relu,
                                 name=f"{name}_deconv{i + 1}") for i, f in enumerate((2 * filters, filters, filters))],
        layers.Conv2DTranspose(image_shape[-1], 4, padding="same", name=f"{name}_out"),
        layers.Cropping2D(crop),
        layers.Activation("sigmoid", dtype="float32"),
    ], name=name)


def tc_discriminator(latent_dim=10, units=1000, depth=6, name="tc_discriminator"):
    """Codes -> 2 logits: (drawn from q(z), drawn from the product of its marginals)."""
    return keras.Sequential([keras.Input((latent_dim,))]
                            + [layers.Dense(units, activation=keras.activations.leaky_relu, name=f"{name}_fc{i + 1}")
                               for i in range(depth)]
                            + [layers.Dense(2, name=f"{name}_logits", dtype="float32")], name=name)


@keras.saving.register_keras_serializable(package="tfdefense")
class GaussianMixturePrior(keras.layers.Layer):
    """p(z_u) = sum_c p(c) N(z_u; mu_c, diag(sigma_c^2)) with p(c) = 1/C (Eq. 9).

    ``call(z)`` returns log N(z; mu_c, Sigma_c) for every class, [N, C]: the
    logits of q(c | z_u) (Eq. 10) under the uniform class prior. Scales are
    softplus(raw) + ``min_scale`` so the likelihood term cannot collapse a
    component to a point.

    Example:
        >>> GaussianMixturePrior(classes=3, dim=2)(tf.zeros([4, 2])).shape
        TensorShape([4, 3])
    """

    def __init__(self, classes=CLASSES, dim=10, min_scale=0.05, **kwargs):
        kwargs.setdefault("dtype", "float32")  # log-densities stay float32 under a mixed policy (tfp needs it)
        super().__init__(**kwargs)
        self.classes, self.dim, self.min_scale = int(classes), int(dim), float(min_scale)
        self.means = self.add_weight(name="means", shape=(self.classes, self.dim),
                                     initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.raw_scales = self.add_weight(name="raw_scales", shape=(self.classes, self.dim),
                                          initializer=keras.initializers.Constant(0.5413))  # softplus -> 1
        self.built = True

    def components(self):
        """The C class-conditional Gaussians, one `MultivariateNormalDiag` with batch shape [C]."""
        from tensorflow_probability import distributions as tfd  # imported on use: tfp is slow to import

        scales = tf.nn.softplus(tf.convert_to_tensor(self.raw_scales)) + self.min_scale
        return tfd.MultivariateNormalDiag(loc=tf.convert_to_tensor(self.means), scale_diag=scales)

    def mixture(self):
        """The marginal p(z_u) itself: `MixtureSameFamily` of the components under uniform weights."""
        from tensorflow_probability import distributions as tfd

        return tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros([self.classes])), self.components())

    def call(self, z):
        return self.components().log_prob(tf.cast(z, tf.float32)[:, None, :])

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "dim": self.dim, "min_scale": self.min_scale}
