"""Protect your own classifier: train a zoo defense for it on your data, in one call.

`defend(classifier, family, data)` trains ``family`` (``"magnet"``,
``"apegan"``, ``"diffpure"``, ...) on your images for your keras classifier
and returns the defended classifier, a `DefendedClassifier` like every zoo
entry: ``defend``, ``predict``, the attacks, calibration and export all take
it. The run is a folder (``workdir``), checkpointed every epoch; its
``export/`` holds the weights, a copy of your classifier and the card, so
``tfdefense.load_folder(workdir + "/export")`` or ``tfdefense evaluate
--model=DIR`` finds it again later.

Example:
    >>> import tfdefense
    >>> defended = tfdefense.defend(my_classifier, "magnet", data="photos.npz",
    ...                             workdir="runs/magnet_photos")         # doctest: +SKIP
    >>> out = defended.defend(x)      # logits, label, purified, score, is_adversarial, rejected  # doctest: +SKIP
"""

import os

import keras

from tfdefense import datasets
from tfdefense.zoo import registry, training


def defend(classifier, family, data, *, workdir=None, name=None, resume=False, config=None, verbose="auto",
           **train_settings):
    """Trains ``family`` for ``classifier`` on ``data`` and returns the defended classifier.

    Args:
        classifier: your keras classifier (logits or a final softmax, which is removed), or the path
            of a saved ``.keras`` model.
        family: a zoo family (`tfdefense.registry.list_families`); shape-generic ones take any image size.
        data: a `tfdefense.datasets` source (``"tfds:NAME"``, a ``.npz`` path, a folder of class
            folders), a `tf.data.Dataset` of (image, label) pairs, or an ``(x, y)`` tuple.
        workdir: the training folder (default ``runs/<name>``).
        name: the defense's name (default ``<family>_<data>``).
        resume: continue a killed run in ``workdir``.
        config: architecture settings over the family's defaults.
        **train_settings: ``epochs``, ``batch_size``, ``steps_per_epoch``, ``learning_rate``, ``seed``.

    Returns:
        A `DefendedClassifier`; its ``.card`` holds what was trained and measured.
    """
    if not isinstance(data, str):  # in-memory data: registered under the defense's name
        name = name or f"{family}_yours"
        datasets.register(name, data)
        data = name
    name = name or f"{family}_{registry._slug(data)}"
    workdir = workdir or os.path.join("runs", name)
    os.makedirs(workdir, exist_ok=True)
    if isinstance(classifier, keras.Model):
        path = os.path.join(workdir, registry.CLASSIFIER_FILE)
        classifier.save(path)
        classifier = path
    entry = registry.user_entry(family, data, classifier=classifier, name=name, config=config)
    training.train_and_evaluate(entry, workdir, resume=resume, overrides=train_settings, verbose=verbose)
    return registry.load_folder(os.path.join(workdir, "export"))
