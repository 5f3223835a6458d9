import keras

from tfdefense.defense import networks
from tfdefense.families.classifiers import builders as cbuilders
from tfdefense.defense import cost


def test_classifier_a_flops_by_hand():
    # conv1 24x24x64x25, conv2 10x10x64x(25x64), fc 6400x128, fc 128x10 multiply-adds
    macs = 24 * 24 * 64 * 25 + 10 * 10 * 64 * 25 * 64 + 6400 * 128 + 128 * 10
    assert cost.forward_flops(cbuilders.classifier_a()) == 2 * macs


def test_aegan_search_flops():
    dec, enc = networks.decoder(), networks.encoder()
    dec_macs = 128 * 4096 + 4 * 4 * 256 * 128 * 25 + 7 * 7 * 128 * 64 * 25 + 14 * 14 * 64 * 25
    assert cost.forward_flops(dec) == 2 * dec_macs
    total = cost.search_flops(dec, enc, steps=15)
    assert 1.4e9 < total < 1.6e9  # about 1.5 GFLOP per purified image at L=15
    assert cost.search_flops(dec, None, steps=200, restarts=10) > 100 * total / 15 * 10 / 10


def test_forward_flops_counts_nested_models():
    import keras

    from tfdefense.defense import networks

    encoder, decoder = networks.encoder(4, 2), networks.decoder(4, 2)
    nested = keras.Sequential([encoder, decoder])
    assert cost.forward_flops(nested) == cost.forward_flops(encoder) + cost.forward_flops(decoder) > 0


def test_a_defense_adds_up_its_layers_costs():
    from tfdefense.families.aegan.defended import build_defended

    encoder, decoder, classifier = networks.encoder(4, 2), networks.decoder(4, 2), cbuilders.classifier_c(units=4)
    flops = build_defended(encoder, decoder, classifier, steps=3, threshold=0.25).flops()
    gfx = cost.forward_flops(encoder) + cost.forward_flops(decoder)
    assert flops["classifier"] == cost.forward_flops(classifier)
    assert flops["purifier"] == cost.search_flops(decoder, encoder, steps=3) > gfx
    # AE-GAN+rs's L1 detector scores G(F(x)), which the pipeline computes once and the bypass path reuses.
    assert flops["detectors"] == {"l1": 0} and flops["surrogate"] == gfx
    assert flops["total"] == flops["classifier"] + gfx + flops["purifier"]
    assert flops["unflagged"] == flops["classifier"] + gfx  # the bypass: G(F(x)) instead of the search


def test_magnets_autoencoder_counts_once():
    """MagNet's reformer and both detectors share AE(x): counted once, as the pipeline runs it."""
    from tfdefense.families.magnet import build_defended

    autoencoder = networks.decoder(4, 2)  # any image-to-image stand-in for the shape of the count
    encoder = networks.encoder(4, 2)
    ae = keras.Sequential([encoder, autoencoder])
    classifier = cbuilders.classifier_c(units=4)
    flops = build_defended(ae, classifier).flops()
    assert flops["total"] == cost.forward_flops(classifier) + cost.forward_flops(ae)
    assert set(flops["detectors"].values()) == {0}
