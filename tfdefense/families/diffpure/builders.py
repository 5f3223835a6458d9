"""The noise-prediction UNet of the DiffPure family, built for any image shape.

A small DDPM UNet (Ho et al. 2020, Appendix B, scaled down for 28x28 and
32x32 images): a sinusoidal time embedding, residual blocks with group
normalization and SiLU whose second convolution is shifted by the time
embedding, one average-pool downsampling per level and nearest-neighbour
upsampling with skip connections. No attention, to keep a CPU epoch short.
An image whose height or width is not a multiple of ``2 ** (levels - 1)`` is
zero-padded inside the network and cropped back, so every shape
builds (28 -> 28 for two downsamplings, 30 -> 32 -> 30).

Example:
    >>> unet = noise_unet((28, 28, 1), filters=8, multipliers=(1, 2))
    >>> [tuple(t.shape) for t in unet.inputs]
    [(None, 28, 28, 1), (None,)]
"""

import math

import keras
from keras import layers, ops


def timestep_embedding(t, dim):
    """Sinusoidal embedding of integer timesteps ``t`` [N] -> [N, dim] (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = ops.exp(-math.log(10000.0) * ops.arange(half, dtype="float32") / half)
    args = ops.cast(ops.reshape(t, (-1, 1)), "float32") * ops.reshape(freqs, (1, -1))
    return ops.concatenate([ops.sin(args), ops.cos(args)], axis=-1)


@keras.saving.register_keras_serializable(package="tfdefense")
class TimestepEmbedding(layers.Layer):
    """`timestep_embedding` as a serializable layer."""

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)

    def call(self, t):
        return timestep_embedding(t, self.dim)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * (self.dim // 2))

    def get_config(self):
        return dict(super().get_config(), dim=self.dim)


@keras.saving.register_keras_serializable(package="tfdefense")
class GroupNormalization(layers.GroupNormalization):
    """Keras' group normalization, computed from per-channel moments: the same weights and the same output.

    Keras reshapes [N, H, W, C] into groups and reduces over three axes of a 5-D tensor, two passes that
    took 29% of a DiffPure purification here (`tf.nn.moments` on a strided layout). This reduces over H and W
    first, per channel, as global average pooling does, and then over the channels of each group, using
    var = E[x^2] - E[x]^2 in float32; normalizing is then one multiply-add per element.
    """

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        channels, groups = x.shape[-1], self.groups
        spatial = list(range(1, len(x.shape) - 1))

        def group_mean(per_channel):  # [N, C] -> [N, C], the mean over each channel's group
            grouped = ops.reshape(per_channel, (-1, groups, channels // groups))
            mean = ops.mean(grouped, axis=-1, keepdims=True)
            return ops.reshape(ops.broadcast_to(mean, ops.shape(grouped)), (-1, channels))

        mean = group_mean(ops.mean(x, axis=spatial))
        variance = ops.maximum(group_mean(ops.mean(ops.square(x), axis=spatial)) - ops.square(mean), 0.0)
        scale = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            scale = scale * ops.cast(self.gamma, "float32")
        shift = -mean * scale
        if self.center:
            shift = shift + ops.cast(self.beta, "float32")
        shape = (-1, *([1] * len(spatial)), channels)
        return ops.cast(x * ops.reshape(scale, shape) + ops.reshape(shift, shape), self.compute_dtype)


def _groups(channels):
    return math.gcd(channels, 8)


def _res_block(x, temb, channels, name):
    h = GroupNormalization(_groups(x.shape[-1]), name=f"{name}_norm1")(x)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv1")(layers.Activation("silu")(h))
    shift = layers.Dense(channels, name=f"{name}_temb")(temb)
    h = layers.Add()([h, layers.Reshape((1, 1, channels))(shift)])
    h = GroupNormalization(_groups(channels), name=f"{name}_norm2")(h)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv2")(layers.Activation("silu")(h))
    skip = x if x.shape[-1] == channels else layers.Conv2D(channels, 1, name=f"{name}_skip")(x)
    return layers.Add()([h, skip])


def noise_unet(image_shape, filters=32, multipliers=(1, 2, 2), name="noise_unet"):
    """``[x_t in [-1, 1] (N, H, W, C), t (N,) int] -> predicted noise (N, H, W, C)``.

    Args:
        image_shape: (H, W, C) of the images.
        filters: channels at full resolution.
        multipliers: channels of each level as multiples of ``filters``; one
            downsampling between consecutive levels.
    """
    height, width, channels = (int(d) for d in image_shape)
    x_in = keras.Input(image_shape, name="x_t")
    t_in = keras.Input((), dtype="int32", name="t")
    temb_dim = 4 * filters
    temb = TimestepEmbedding(filters, name="temb_sin")(t_in)
    temb = layers.Dense(temb_dim, activation="silu", name="temb_dense1")(temb)
    temb = layers.Dense(temb_dim, name="temb_dense2")(temb)
    temb = layers.Activation("silu")(temb)

    scale = 2 ** (len(multipliers) - 1)
    pad_h, pad_w = (-height) % scale, (-width) % scale
    x = x_in
    if pad_h or pad_w:
        x = layers.ZeroPadding2D(((0, pad_h), (0, pad_w)), name="pad")(x)
    h = layers.Conv2D(filters, 3, padding="same", name="stem")(x)
    skips = []
    for level, mult in enumerate(multipliers):
        if level:
            h = layers.AveragePooling2D(2, name=f"down{level}")(h)
        h = _res_block(h, temb, filters * mult, f"enc{level}")
        skips.append(h)
    h = _res_block(h, temb, filters * multipliers[-1], "mid")
    for level in reversed(range(len(multipliers))):
        h = layers.Concatenate()([h, skips[level]])
        h = _res_block(h, temb, filters * multipliers[level], f"dec{level}")
        if level:
            h = layers.UpSampling2D(2, name=f"up{level}")(h)
    h = layers.Activation("silu")(GroupNormalization(_groups(filters), name="out_norm")(h))
    out = layers.Conv2D(channels, 3, padding="same", name="out", dtype="float32")(h)
    if pad_h or pad_w:
        out = layers.Cropping2D(((0, pad_h), (0, pad_w)), name="crop")(out)
    return keras.Model([x_in, t_in], out, name=name)
