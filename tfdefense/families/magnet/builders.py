"""MagNet's autoencoders, for any image shape.

Two architectures, chosen by the entry's ``arch``:

* ``"table6"`` (default): the encoder and decoder of Table 6 of the AE-GAN+rs
  paper with latent dimension 20 (its Table 8), the baseline the zoo's MNIST
  entries reproduce; built for any (H, W, C) by `tfdefense.networks`.
* ``"meng_chen"``: the convolutional denoising autoencoders of MagNet itself
  (Meng & Chen 2017, Table 1). ``structure`` lists the encoder's layers: an
  int is a 3x3 sigmoid convolution of that many channels, ``"average"`` a
  2x2 average pooling; the decoder mirrors it (upsampling for pooling) and
  ends in a 3x3 sigmoid convolution back to C channels. MNIST's is
  ``[3, "average", 3]``; the CIFAR-10 one is ``[16]`` (two 16-channel
  convolutions and the output convolution), the default for colour images.

Example:
    >>> encoder, decoder = autoencoder({"arch": "meng_chen", "structure": [16]}, (32, 32, 3))
    >>> decoder.outputs[0].shape
    (None, 32, 32, 3)

Reference:
    Meng & Chen, MagNet: a Two-Pronged Defense against Adversarial Examples
    (CCS 2017, arXiv:1705.09064), Table 1 and Section 5.
"""

import keras
from keras import layers

from tfdefense.defense import networks

MNIST_SHAPE = networks.MNIST_SHAPE


def _meng_chen(structure, image_shape):
    encoder = [keras.Input(image_shape)]
    for i, item in enumerate(structure):
        encoder.append(layers.AveragePooling2D(2, name=f"enc_pool{i}") if item == "average" else
                       layers.Conv2D(int(item), 3, padding="same", activation="sigmoid", name=f"enc_conv{i}"))
    enc = keras.Sequential(encoder, name="encoder")
    decoder = [keras.Input(enc.outputs[0].shape[1:])]
    for i, item in enumerate(reversed(structure)):
        decoder.append(layers.UpSampling2D(2, name=f"dec_up{i}") if item == "average" else
                       layers.Conv2D(int(item), 3, padding="same", activation="sigmoid", name=f"dec_conv{i}"))
    decoder.append(layers.Conv2D(image_shape[-1], 3, padding="same", name="dec_out"))
    decoder.append(layers.Activation("sigmoid", dtype="float32"))
    return enc, keras.Sequential(decoder, name="decoder")


def adapt(config, image_shape):
    """A user entry's architecture: MagNet's own CIFAR-10 autoencoder for colour images."""
    if image_shape[-1] == 3 and "arch" not in config:
        return {**config, "arch": "meng_chen", "structure": [16]}
    return config


def autoencoder(config, image_shape=MNIST_SHAPE):
    """(encoder, decoder) for an entry's ``config`` and an image shape."""
    image_shape = tuple(int(d) for d in image_shape)
    arch = config.get("arch", "table6")
    if arch == "table6":
        latent_dim, filters = config.get("latent_dim", 20), config.get("filters", 64)
        return (networks.encoder(latent_dim, filters, input_shape=image_shape),
                networks.decoder(latent_dim, filters, image_shape=image_shape))
    if arch == "meng_chen":
        structure = config.get("structure", [16] if image_shape[-1] == 3 else [3, "average", 3])
        pools = sum(item == "average" for item in structure)
        if image_shape[0] % 2 ** pools or image_shape[1] % 2 ** pools:
            raise ValueError(f"structure {structure} pools {pools} times; {image_shape[:2]} is not divisible by "
                             f"{2 ** pools}.")
        return _meng_chen(structure, image_shape)
    raise ValueError(f"unknown MagNet arch {arch!r}; choose 'table6' or 'meng_chen'.")
