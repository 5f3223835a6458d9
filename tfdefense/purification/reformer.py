"""`ModelPurifier`: one forward pass of an image-to-image network as a purifier.

MagNet's autoencoder reformer and APE-GAN's generator are this kind: they are
differentiable, so a white-box attack uses their true gradient.

Example:
    >>> purifier = ModelPurifier(autoencoder)            # doctest: +SKIP
    >>> purifier(x)["images"]                            # doctest: +SKIP
"""

import keras
import tensorflow as tf

from tfdefense.defense.contract import PurifierLayer
from tfdefense.defense.serialization import deserialize_parts, serialize_parts


@keras.saving.register_keras_serializable(package="tfdefense")
class ModelPurifier(PurifierLayer):
    """Purifies by ``model(x)``; deterministic and differentiable.

    Args:
        model: images -> images in [0, 1] (called with ``training=False``,
            so batch norm uses its moving statistics).

    Returns (call):
        dict with ``images`` and ``errors`` (per-image MSE to the input).
    """

    differentiable = True
    surrogate_name = "self"
    output_is_surrogate = True

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.built = True

    def surrogate(self, x):
        return tf.cast(self.model(x, training=False), tf.float32)

    def surrogate_flops(self):
        return self.flops()

    def call(self, x, seed=0):
        images = self.surrogate(x)
        return {"images": images, "errors": tf.reduce_mean(tf.square(images - tf.cast(x, tf.float32)), [1, 2, 3])}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, ("model",)))
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, ("model",)))
