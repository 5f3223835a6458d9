"""Network builders several families share.

* Table 6 of AE-GAN+rs (anon.): `encoder`, `decoder`, `discriminator` (AE-GAN,
  MagNet, the Defense-GAN generator). They take a ``filters`` width (64 in
  the paper) so tests can build tiny ones.
* Table 5 of AE-GAN+rs (anon.) (after Defense-GAN): the classifiers A, B and C
  (`classifier_a`, ..., `build_classifier`), which every defense protects
  and the robust-classifier families train. Each outputs **logits**: attacks
  need them, and the softmax lives in the loss (``from_logits=True``).

Reference:
    Encoder-assisted search in the latent coding space (AE-GAN+rs), Tables 5-6;
    Samangouei et al., Defense-GAN, ICLR 2018.
"""

import math

import keras
from keras import layers

from tfdefense.defense.replicas import BatchNormalization

# The papers' MNIST shape: the default of builders that tests and the pretrained entries call bare.
MNIST_SHAPE = (28, 28, 1)


def _conv_stack(filters, name, batch_norm=True):
    """Conv(f,5,2)-LReLU, Conv(2f,5,2)-BN-LReLU, Conv(4f,5,2)-BN-LReLU, Flatten.

    ``batch_norm=False`` drops the BN layers (a WGAN-GP critic must not
    normalise across the batch: its gradient penalty is per example).
    """
    stack = [layers.Conv2D(filters, 5, strides=2, padding="same", name=f"{name}_conv1"), layers.LeakyReLU(0.2)]
    for i, width in ((2, 2 * filters), (3, 4 * filters)):
        stack.append(layers.Conv2D(width, 5, strides=2, padding="same", name=f"{name}_conv{i}"))
        if batch_norm:
            stack.append(BatchNormalization(name=f"{name}_bn{i}"))
        stack.append(layers.LeakyReLU(0.2))
    return stack + [layers.Flatten()]


def encoder(latent_dim=128, filters=64, input_shape=MNIST_SHAPE, name="encoder"):
    """F: image -> code in [-1, 1]^latent_dim (FC + tanh). Any (H, W, C): three stride-2
    convolutions, then a dense layer over whatever map remains.

    Example:
        >>> encoder().count_params()
        1552000
    """
    return keras.Sequential([keras.Input(input_shape), *_conv_stack(filters, name),
                             layers.Dense(latent_dim, activation="tanh", name=f"{name}_code")], name=name)


def _sizes(length):
    """The map sizes of three stride-2 upsamplings ending at ``length`` (28: 4, 7, 14, 28)."""
    sizes = [length]
    for _ in range(3):
        sizes.insert(0, math.ceil(sizes[0] / 2))
    return sizes


def upsampled_start(image_shape, upsamplings=3):
    """(start map size, Cropping2D argument) of a decoder that upsamples a start map by 2 ``upsamplings``
    times and crops the excess evenly to ``image_shape`` (28: start 4, 32 -> 28 by 2 on each side)."""
    scale = 2 ** upsamplings
    start = (math.ceil(image_shape[0] / scale), math.ceil(image_shape[1] / scale))
    extra = (scale * start[0] - image_shape[0], scale * start[1] - image_shape[1])
    return start, ((extra[0] // 2, extra[0] - extra[0] // 2), (extra[1] // 2, extra[1] - extra[1] // 2))


def decoder(latent_dim=128, filters=64, image_shape=MNIST_SHAPE, name="decoder"):
    """G: code -> image in [0, 1].

    FC(4*4*4f)-ReLU, ConvT(2f,5,2)-BN-ReLU, crop to 7x7, ConvT(f,5,2)-BN-ReLU,
    ConvT(1,5,2)-sigmoid: the Defense-GAN MNIST generator that Table 6 restates
    (its "FC(1024)" row feeds a 4x4x256 map, i.e. 4096 units). For another
    (H, W, C) the same three upsamplings start from (ceil(H/8), ceil(W/8)),
    each map is cropped to the size that halves down from H and W (32: 4, 8,
    16, 32, no crop), and the last layer has C channels.

    Example:
        >>> decoder().count_params()
        1554945
    """
    heights, widths = _sizes(image_shape[0]), _sizes(image_shape[1])

    def crop(k):  # after the k-th upsampling (1-based): down to the planned size
        extra = (2 * heights[k - 1] - heights[k], 2 * widths[k - 1] - widths[k])
        return [layers.Cropping2D(((0, extra[0]), (0, extra[1])))] if any(extra) else []

    return keras.Sequential([
        keras.Input((latent_dim,)),
        layers.Dense(heights[0] * widths[0] * 4 * filters, name=f"{name}_fc"),
        layers.ReLU(),
        layers.Reshape((heights[0], widths[0], 4 * filters)),
        layers.Conv2DTranspose(2 * filters, 5, strides=2, padding="same", name=f"{name}_convt1"),
        BatchNormalization(name=f"{name}_bn1"),
        layers.ReLU(),
        *crop(1),
        layers.Conv2DTranspose(filters, 5, strides=2, padding="same", name=f"{name}_convt2"),
        BatchNormalization(name=f"{name}_bn2"),
        layers.ReLU(),
        *crop(2),
        layers.Conv2DTranspose(image_shape[2], 5, strides=2, padding="same", name=f"{name}_convt3"),
        *crop(3),
        layers.Activation("sigmoid", dtype="float32"),
    ], name=name)


def discriminator(filters=64, input_shape=MNIST_SHAPE, name="discriminator", batch_norm=True):
    """D: image -> one logit (the sigmoid of Table 6 lives in the loss).

    Example:
        >>> discriminator().count_params()
        1031681
    """
    return keras.Sequential([keras.Input(input_shape), *_conv_stack(filters, name, batch_norm),
                             layers.Dense(1, name=f"{name}_logit", dtype="float32")], name=name)


def classifier_a(input_shape=MNIST_SHAPE, num_classes=10, filters=64, units=128, name="classifier_a"):
    """Conv(64,5x5,1)-ReLU-Conv(64,5x5,2)-ReLU-Dropout(.25)-FC(128)-ReLU-Dropout(.5)-FC(10).

    Example:
        >>> classifier_a().count_params()
        924746
    """
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(filters, 5, strides=1, padding="valid", activation="relu"),
        layers.Conv2D(filters, 5, strides=2, padding="valid", activation="relu"),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(units, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes),
    ], name=name)


def classifier_b(input_shape=MNIST_SHAPE, num_classes=10, filters=64, name="classifier_b"):
    """Conv(64,8x8,2)-ReLU-Conv(128,6x6,2)-ReLU-Conv(128,5x5,1)-ReLU-Dropout(.5)-FC(10).

    Padding as in the Defense-GAN/CleverHans model B: SAME, VALID, VALID.

    Example:
        >>> classifier_b().count_params()
        710218
    """
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(filters, 8, strides=2, padding="same", activation="relu"),
        layers.Conv2D(2 * filters, 6, strides=2, padding="valid", activation="relu"),
        layers.Conv2D(2 * filters, 5, strides=1, padding="valid", activation="relu"),
        layers.Dropout(0.5),
        layers.Flatten(),
        layers.Dense(num_classes),
    ], name=name)


def classifier_c(input_shape=MNIST_SHAPE, num_classes=10, units=200, name="classifier_c"):
    """FC(200)-ReLU-Dropout(.5)-FC(200)-ReLU-Dropout(.5)-FC(10).

    Example:
        >>> classifier_c().count_params()
        199210
    """
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Flatten(),
        layers.Dense(units, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(units, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes),
    ], name=name)


BUILDERS = {"a": classifier_a, "b": classifier_b, "c": classifier_c}


def build_classifier(arch, **kwargs):
    """Builds classifier ``arch`` in {"a", "b", "c"} with builder kwargs."""
    if arch not in BUILDERS:
        raise ValueError(f"Unknown classifier architecture {arch!r}; choose one of {sorted(BUILDERS)}.")
    return BUILDERS[arch](**kwargs)
