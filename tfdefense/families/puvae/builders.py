"""PuVAE networks: architecture C of Table 6 of Wester & Thisted 2020 (MNIST, Fashion-MNIST).

The encoder is split in two so inference can share work across classes.
Its first dense layer acts on [conv features, one-hot label]; W [f; y] + b =
(W_f f + b) + W_y y, so ``trunk`` (three 7x7 convolutions, dilation 2,
stride 1, "same" padding, ReLU, flatten, and W_f f + b) runs once per image and
``head`` (+ W_y y, ReLU, FC(1024)-ReLU, a linear mean and a Softplus
scale) once per (image, class): the same function as Table 6's encoder at a
tenth of its inference cost. The label enters at the first dense layer of
the encoder and of the decoder; the table does not say where it enters.

Every width is a parameter so tests can build tiny ones.

Reference:
    Wester & Thisted 2020 Table 6 (C) and Table 2 (latent 32 on MNIST, 128 on Fashion-MNIST);
    Hwang et al., PuVAE (2019).
"""

import keras
from keras import layers

from tfdefense.defense import networks

MNIST_SHAPE = (28, 28, 1)
CLASSES = 10
OUTPUTS = ("sigmoid", "relu")


def trunk(filters=32, hidden=1024, input_shape=MNIST_SHAPE, dtype=None, name="trunk"):
    """Image -> the image's share of the encoder's first dense layer:
    3 x Conv(filters, 7x7, stride 1, dilation 2)-ReLU, flatten, W_f f + b.

    ``dtype`` (e.g. "float16") sets every layer's policy: the family stores
    this 25.8M-parameter network in half precision (see `tfdefense.puvae`).

    Example:
        >>> trunk().output_shape
        (None, 1024)
    """
    return keras.Sequential([keras.Input(input_shape)]
                            + [layers.Conv2D(filters, 7, padding="same", dilation_rate=2, activation="relu",
                                             dtype=dtype, name=f"{name}_conv{i + 1}") for i in range(3)]
                            + [layers.Flatten(dtype=dtype), layers.Dense(hidden, dtype=dtype, name=f"{name}_fc1_image")],
                           name=name)


def head(latent_dim=32, hidden=1024, classes=CLASSES, name="head"):
    """[trunk output, one-hot label] -> (mean, scale) of q(z | x, y): adds the label's share of the
    first dense layer (W_y y), ReLU, FC(hidden)-ReLU, then a linear mean and a Softplus scale
    (Table 6 prints a ReLU after the mean's FC; a ReLU mean could not reach the negative half of
    the N(0, I) prior, so the mean is linear)."""
    f, y = keras.Input((hidden,), name="image_share"), keras.Input((classes,), name="label")
    h = layers.Add()([f, layers.Dense(hidden, use_bias=False, name=f"{name}_fc1_label")(y)])
    h = layers.ReLU()(h)
    h = layers.Dense(hidden, activation="relu", name=f"{name}_fc2")(h)
    mean = layers.Dense(latent_dim, name=f"{name}_mean", dtype="float32")(h)
    scale = layers.Dense(latent_dim, activation="softplus", name=f"{name}_scale", dtype="float32")(h)
    return keras.Model([f, y], [mean, scale], name=name)


def decoder(latent_dim=32, filters=32, classes=CLASSES, output="sigmoid", image_shape=MNIST_SHAPE,
            name="decoder"):
    """[z, one-hot label] -> image in [0, 1]: FC(512)-ReLU, reshape 4x4x32, three
    Deconv(filters, 7x7, stride 2)-ReLU (4 -> 32), Deconv(C, 3x3, stride 1), the output
    activation, and a 2-pixel crop to 28x28 (the table leaves the reshape and crop open). Another
    (H, W, C) starts from (ceil(H/8), ceil(W/8)) and crops the excess evenly.

    ``output``: "sigmoid" (default) or "relu" as Table 6 prints it, clipped at 1.

    Example:
        >>> decoder().count_params()
        172929
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
    z, y = keras.Input((latent_dim,), name="z"), keras.Input((classes,), name="label")
    h = layers.Concatenate()([z, y])
    start, crop = networks.upsampled_start(image_shape)
    h = layers.Dense(start[0] * start[1] * filters, activation="relu", name=f"{name}_fc")(h)
    h = layers.Reshape((*start, filters))(h)
    for i in range(3):
        h = layers.Conv2DTranspose(filters, 7, strides=2, padding="same", activation="relu",
                                   name=f"{name}_deconv{i + 1}")(h)
    h = layers.Conv2DTranspose(image_shape[-1], 3, padding="same", name=f"{name}_out")(h)
    h = layers.Cropping2D(crop)(h)
    if output == "sigmoid":
        h = layers.Activation("sigmoid", dtype="float32")(h)
    else:
        h = layers.ReLU(max_value=1.0, dtype="float32")(h)
    return keras.Model([z, y], h, name=name)
