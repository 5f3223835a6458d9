"""Export a defended model as a TF SavedModel in TF Serving's layout.

``export(model, base_dir, name)`` writes ``<base_dir>/<name>/<version>/`` with
``keras.export.ExportArchive`` (a plain ``tf.saved_model.save`` of Keras 3
models loads in Python but not in the TF1 session loader TF Serving uses).

Endpoints (all take a dynamic batch of at most ``MAX_BATCH`` images):

* ``serving_default``: float32 ``images`` [N, H, W, C] (the model's image_shape) in [0, 1] ->
  ``logits``, ``label``, ``purified``, ``score``, ``is_adversarial``, ``rejected``;
* ``serving_uint8``: uint8 ``images`` [N, H, W, C] (scaled by 1/255) -> same;
* ``purify``: float32 images -> ``purified``, ``score``, ``is_adversarial``, ``rejected``;
* ``detect``: float32 images -> ``score``, ``is_adversarial``, ``rejected``.

Any registered entry exports, a bare classifier included (it is a
`DefendedClassifier` with no purifier and no detector); a plain keras
classifier passed in is wrapped the same way.

The graph itself rejects bad input (wrong rank or channels, NaN/Inf, values
outside [0, 1], an empty or too large batch) with an InvalidArgumentError
that says what was wrong.

Example:
    >>> import tfdefense
    >>> from tfdefense import export
    >>> export.export(tfdefense.load("aegan_mnist"), "/tmp/serving", "aegan_mnist")  # doctest: +SKIP
    '/tmp/serving/aegan_mnist/1'
"""

import os

import keras
import tensorflow as tf

from tfdefense.defense.defended import DefendedClassifier


def _signature(dtype, image_shape):
    return [tf.TensorSpec([None, *image_shape], dtype, name="images")]


def next_version(model_dir):
    """1 for a new folder, else one more than the highest numeric version inside."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()]
    return max(versions, default=0) + 1


def export(model, base_dir, name, version=None):
    """Writes ``model`` (a `DefendedClassifier`) to ``base_dir/name/version``.

    Args:
        model: a `DefendedClassifier` (or a keras classifier, served bare).
        base_dir: TF Serving's model base path.
        name: the model name in TF Serving.
        version: integer version (default: the next free one).

    Returns:
        The version folder written.
    """
    version = next_version(os.path.join(base_dir, name)) if version is None else int(version)
    path = os.path.join(base_dir, name, str(version))
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; TF Serving versions are immutable, choose another version.")

    if not isinstance(model, DefendedClassifier):
        model = DefendedClassifier(model, name=name)

    def serve(images):
        return model.pipeline(images, 0)

    def serve_uint8(images):
        images = tf.ensure_shape(images, [None, *model.image_shape])
        return serve(tf.cast(images, tf.float32) / 255.0)

    def purify(images):
        out = serve(images)
        return {k: out[k] for k in ("purified", "score", "is_adversarial", "rejected")}

    def detect(images):
        return model.detect(images)

    # The endpoints' own variables are all the archive needs. Tracking the whole model as well writes every
    # weight twice (keras#23553), and TF Serving loads both copies into memory.
    archive = keras.export.ExportArchive()
    archive.add_endpoint("serving_default", serve, _signature(tf.float32, model.image_shape))
    archive.add_endpoint("serving_uint8", serve_uint8, _signature(tf.uint8, model.image_shape))
    archive.add_endpoint("purify", purify, _signature(tf.float32, model.image_shape))
    archive.add_endpoint("detect", detect, _signature(tf.float32, model.image_shape))
    tmp = path + ".partial"
    archive.write_out(tmp, verbose=False)
    os.replace(tmp, path)  # TF Serving never sees a half-written version
    return path
