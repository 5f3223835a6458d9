"""APE-GAN_m networks (Table 6 of Shen et al. 2017).

Both take a ``filters`` width (64 in the paper) so tests can build tiny ones.

Reference:
    Shen et al., APE-GAN: Adversarial Perturbation Elimination with GAN (2017), Table 6.
"""

import keras
from keras import layers

from tfdefense.defense.replicas import BatchNormalization

MNIST_SHAPE = (28, 28, 1)


def _down(width, name, batch_norm=True):
    block = [layers.Conv2D(width, 3, strides=2, padding="same", name=name)]
    if batch_norm:
        block.append(BatchNormalization(name=f"{name}_bn"))
    return block + [layers.LeakyReLU(0.2)]


def _crop_to(shape):
    extra = ((-shape[0]) % 4 and 4 - shape[0] % 4, (-shape[1]) % 4 and 4 - shape[1] % 4)
    return [layers.Cropping2D(((0, extra[0]), (0, extra[1])))] if any(extra) else []


def generator(filters=64, input_shape=MNIST_SHAPE, name="generator"):
    """Image -> image in [0, 1]: Conv(64,3,2)-BN-lrelu, Conv(128,3,2)-BN-lrelu,
    Deconv(64,3,2)-BN-lrelu, Deconv(C,3,2)-sigmoid (28 -> 14 -> 7 -> 14 -> 28).

    The table gives no kernel for the Deconv rows; 3x3 like the Conv rows.
    APE-GAN_c (CIFAR-10) is the same network on (32, 32, 3) (Table 6: "no
    difference except for the input size and the channel numbers"). A side
    that is not a multiple of 4 comes back larger and is cropped to the input.

    Example:
        >>> generator().count_params()
        149889
    """
    return keras.Sequential([
        keras.Input(input_shape),
        *_down(filters, f"{name}_conv1"),
        *_down(2 * filters, f"{name}_conv2"),
        layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=f"{name}_deconv1"),
        BatchNormalization(name=f"{name}_deconv1_bn"),
        layers.LeakyReLU(0.2),
        layers.Conv2DTranspose(input_shape[-1], 3, strides=2, padding="same", name=f"{name}_deconv2"),
        *_crop_to(input_shape),
        layers.Activation("sigmoid", dtype="float32"),
    ], name=name)


def discriminator(filters=64, input_shape=MNIST_SHAPE, name="discriminator"):
    """Image -> one logit: Conv(64,3,2)-lrelu, Conv(128,3,2)-BN-lrelu,
    Conv(256,3,2)-BN-lrelu, FC(1); the table's sigmoid lives in the loss.

    Example:
        >>> discriminator().count_params()
        375297
    """
    return keras.Sequential([
        keras.Input(input_shape),
        *_down(filters, f"{name}_conv1", batch_norm=False),
        *_down(2 * filters, f"{name}_conv2"),
        *_down(4 * filters, f"{name}_conv3"),
        layers.Flatten(),
        layers.Dense(1, name=f"{name}_logit", dtype="float32"),
    ], name=name)
