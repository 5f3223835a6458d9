"""Analytic FLOP counts of models and of the latent search.

TensorFlow's graph profiler does not count transposed convolutions
(Conv2DBackpropInput), so we count multiply-adds from layer shapes. Every
purifier and detector reports its own cost per image through the contract's
``flops()`` (`tfdefense.defense.contract`), built from these counts, and
`DefendedClassifier.flops()` adds them up.
"""

import keras


def layer_flops(layer):
    """FLOPs (2 x multiply-adds) of one example through a Dense, Conv2D or
    Conv2DTranspose layer; 0 for any other layer."""
    if isinstance(layer, keras.layers.Dense):
        return 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    if isinstance(layer, keras.layers.Conv2DTranspose):
        _, h, w, _ = layer.input.shape
        kh, kw, cout, cin = layer.kernel.shape
        return 2 * h * w * kh * kw * cin * cout
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, _ = layer.output.shape
        kh, kw, cin, cout = layer.kernel.shape
        return 2 * h * w * kh * kw * cin * cout
    return 0


def forward_flops(model):
    """FLOPs (2 x multiply-adds) of one forward pass of one example.

    Counts Dense, Conv2D and Conv2DTranspose layers, which dominate, inside
    nested models too (MagNet's autoencoder is encoder + decoder); activations
    and normalisation are ignored.
    """
    return int(sum(forward_flops(layer) if isinstance(layer, keras.Model) else layer_flops(layer)
                   for layer in model.layers))


def held_models(layer):
    """The Keras models a purifier or detector layer holds as attributes (its networks)."""
    return [m for m in getattr(layer, "_layers", []) if isinstance(m, keras.Model)]


def search_flops(decoder, encoder=None, steps=15, restarts=1):
    """FLOPs to purify one image: encoder, then per restart L steps of
    (decoder forward + gradient w.r.t. the code, about one more forward) and a
    final decode."""
    dec = forward_flops(decoder)
    enc = forward_flops(encoder) if encoder is not None else 0
    return int(enc + restarts * (2 * steps * dec + dec))
