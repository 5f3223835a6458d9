import keras
import numpy as np

from tfdefense import testing
from tfdefense.aegan import builders
from tfdefense.classifiers import builders as cbuilders
from tfdefense.defensegan.robust import ManifoldAdversarialTraining


def test_train_step_trains_only_the_classifier():
    keras.utils.set_random_seed(0)
    generator = builders.decoder(4, 2)
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
