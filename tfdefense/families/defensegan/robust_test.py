import keras
import numpy as np

from tfdefense import testing
from tfdefense.defense import networks
from tfdefense.families.classifiers import builders as cbuilders
from tfdefense.families.defensegan.robust import ManifoldAdversarialTraining


def test_train_step_trains_only_the_classifier():
    keras.utils.set_random_seed(0)
    generator = networks.decoder(4, 2)
    model = ManifoldAdversarialTraining(cbuilders.classifier_c(units=8), generator, attack_steps=2, pairs=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    frozen = [w.copy() for w in generator.get_weights()]
    x, y = testing.blob_images(8)
    for eager in (True, False):
        testing.set_run_eagerly(model, eager)
        history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        assert np.isfinite(history.history["adversariality"]).all()
    for a, b in zip(frozen, generator.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_manifold_family_saves_and_loads_the_classifier(tmp_path):
    from tfdefense.zoo import registry

    entry = registry.get_entry("classifier_a_mnist_manifold")  # config also holds init, generator, mu, ...
    family = registry.get_family(entry["family"])
    model = ManifoldAdversarialTraining(cbuilders.classifier_a(), networks.decoder(4, 2), attack_steps=1, pairs=2)
    files = family.save(model, entry, str(tmp_path))
    loaded = family.load(entry, str(tmp_path))
    x, _ = testing.blob_images(2)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model.classifier(x)), atol=1e-5)
    assert files == ["model.weights.h5"]
