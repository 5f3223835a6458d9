"""`ComboVAEPurifier`: FM-Defense's purifier (Wang et al. 2020 Section III.D)."""

import keras
import tensorflow as tf

from tfdefense.defense.contract import PurifierLayer
from tfdefense.defense.serialization import deserialize_parts, serialize_parts

PARTS = ("shared_encoder", "dgmm", "enhanced_decoder")


@keras.saving.register_keras_serializable(package="tfdefense")
class ComboVAEPurifier(PurifierLayer):
    """Reconstructs an input from its class-shared codes z_s (posterior mean of E_s) and
    class-unique codes z_u (the DGMM's output), through the enhanced decoder.

    In FM-Defense only inputs the morph detector flags reach it (unflagged
    ones take ``surrogate``, the identity: they are classified as they are).
    Contract: differentiable and deterministic, so white-box attacks use the
    true gradient of the whole pipeline.

    Example:
        >>> purifier = ComboVAEPurifier(shared_encoder, dgmm, enhanced_decoder)   # doctest: +SKIP
        >>> purifier(x)["images"].shape                                          # doctest: +SKIP
        TensorShape([N, 28, 28, 1])
    """

    differentiable = True
    surrogate_name = "self"

    def __init__(self, shared_encoder, dgmm, enhanced_decoder, **kwargs):
        super().__init__(**kwargs)
        self.shared_encoder, self.dgmm, self.enhanced_decoder = shared_encoder, dgmm, enhanced_decoder
        self.built = True

    def call(self, x, seed=0):
        x = tf.cast(x, tf.float32)
        z_s = self.shared_encoder(x, training=False)[0]
        z_u = self.dgmm(x, training=False)
        images = tf.cast(self.enhanced_decoder(tf.concat([z_s, z_u], -1), training=False), tf.float32)
        return {"images": images}

    def get_config(self):
        return {**super().get_config(), **serialize_parts(self, PARTS)}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
