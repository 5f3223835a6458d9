"""AE-GAN's networks (Table 6 of AE-GAN+rs (anon.)).

They are shared with MagNet and the Defense-GAN generator, so they live in
`tfdefense.networks`; this module names them for AE-GAN's users.
"""

from tfdefense.defense.networks import MNIST_SHAPE, decoder, discriminator, encoder

__all__ = ["MNIST_SHAPE", "decoder", "discriminator", "encoder"]
