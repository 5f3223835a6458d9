"""Export a defended model as a TF SavedModel in TF Serving's layout.

``export(model, base_dir, name)`` writes ``<base_dir>/<name>/<version>/`` with
``keras.export.ExportArchive`` (a plain ``tf.saved_model.save`` of Keras 3
models loads in Python but not in the TF1 session loader TF Serving uses).

Endpoints (all take a dynamic batch of at most ``MAX_BATCH`` images):

* ``serving_default``: float32 ``images`` [N, H, W, C] (the model's image_shape) in [0, 1] ->
  ``logits``, ``label``, ``purified``, ``score``, ``is_adversarial``, ``rejected``;
* ``serving_uint8``: uint8 ``images`` [N, H, W, C] (scaled by 1/255) -> same;
* ``purify``: float32 images -> ``purified``, ``score``, ``is_adversarial``, ``rejected``;
* ``detect``: float32 images -> ``score``, ``is_adversarial``, ``rejected``;
* ``serving_seeded``: float32 ``images`` and an int32 ``seed`` -> as ``serving_default``. The other
  endpoints run a random defense (DiffPure, Defense-GAN's restarts) at seed 0, the same answer for the
  same image; this one draws the randomness the caller asks for, per request.

``export_all(base_dir)`` writes every entry whose weights are here, plus ``models.config`` (one
``tensorflow_model_server`` serves the whole zoo by name and version) and ``batching.config``.

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

from tfdefense.defense import contract
from tfdefense.defense.defended import DefendedClassifier


def _signature(dtype, image_shape):
    return [tf.TensorSpec([None, *image_shape], dtype, name="images")]


def next_version(model_dir):
    """1 for a new folder, else one more than the highest numeric version inside."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()]
    return max(versions, default=0) + 1


def _add_endpoints(archive, model):
    """serving_seeded, serving_default, serving_uint8, purify and detect, on ``archive``."""
    # One traced pipeline, with the seed as an input, behind every endpoint: an endpoint that traced the
    # pipeline itself would add its own copy of the graph (DiffPure's unrolled sampler is 3.4 MB of it).
    seeded = archive.add_endpoint("serving_seeded", model.pipeline, [
        *_signature(tf.float32, model.image_shape), tf.TensorSpec([], tf.int32, name="seed")])

    def serve(images):
        return seeded(images, tf.constant(0, tf.int32))

    def serve_uint8(images):
        images = tf.ensure_shape(images, [None, *model.image_shape])
        return serve(tf.cast(images, tf.float32) / 255.0)

    def purify(images):
        out = serve(images)
        return {k: out[k] for k in ("purified", "score", "is_adversarial", "rejected")}

    def detect(images):
        return model.detect(images)  # cheaper than the pipeline: it purifies only for detectors that need it

    archive.add_endpoint("serving_default", serve, _signature(tf.float32, model.image_shape))
    archive.add_endpoint("serving_uint8", serve_uint8, _signature(tf.uint8, model.image_shape))
    archive.add_endpoint("purify", purify, _signature(tf.float32, model.image_shape))
    archive.add_endpoint("detect", detect, _signature(tf.float32, model.image_shape))


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

    # The endpoints' own variables are all the archive needs. Tracking the whole model as well writes every
    # weight twice (keras#23553), and TF Serving loads both copies into memory.
    archive = keras.export.ExportArchive()
    tmp = path + ".partial"
    # Serving never differentiates: layers trace what only a gradient needs out of the served graph
    # (contract.serving_graph: DiffPure's sampler becomes one loop), and the traced gradients of
    # tf.custom_gradient functions stay out of the file.
    with contract.serving_graph():
        _add_endpoints(archive, model)
        archive.write_out(tmp, verbose=False,
                          options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    os.replace(tmp, path)  # TF Serving never sees a half-written version
    return path


# TF Serving's server-side batching (`--enable_batching --batching_parameters_file`): requests that arrive
# within 2 ms are merged into one graph call of at most 128 images, the batch the bench measures.
BATCHING = {"max_batch_size": 128, "batch_timeout_micros": 2000, "max_enqueued_batches": 100,
            "num_batch_threads": 2}


def models_config(names, base_path="/models"):
    """TF Serving's ``--model_config_file`` text: every name served from ``base_path/<name>``."""
    entries = "".join(f"  config {{\n    name: '{n}'\n    base_path: '{base_path.rstrip('/')}/{n}'\n"
                      "    model_platform: 'tensorflow'\n  }\n" for n in names)
    return f"model_config_list {{\n{entries}}}\n"


def batching_config(params=None):
    """TF Serving's ``--batching_parameters_file`` text (`BATCHING` unless ``params`` says otherwise)."""
    return "".join(f"{k} {{ value: {v} }}\n" for k, v in {**BATCHING, **(params or {})}.items())


def load_for_serving(name, folder=None, **overrides):
    """`tfdefense.load` under the card's recommended dtype policy unless ``dtype_policy`` is given."""
    from tfdefense.zoo import registry

    if overrides.get("dtype_policy") is None:
        overrides["dtype_policy"] = "recommended"
    return registry.load(name, folder, **overrides)


def export_all(base_dir, names=None, base_path="/models", load=None):
    """Exports ``names`` (default: every entry whose weights are here or cached) into ``base_dir`` in TF
    Serving's layout, then writes ``base_dir/models.config`` and ``base_dir/batching.config``.

    ``base_path`` is where the server sees ``base_dir`` (the container's mount point). Returns
    {name: version folder}.
    """
    from tfdefense.utils import progress
    from tfdefense.zoo import registry, store

    if names is None:
        names = [n for n in registry.list_models() if store.status(n) in ("here", "cached")]
    if not names:
        raise ValueError("no entry to export: none has its weights here (tfdefense download NAME...).")
    load = load or load_for_serving
    os.makedirs(base_dir, exist_ok=True)
    written = {name: export(load(name), base_dir, name) for name in progress.bar(list(names), desc="export", unit="model")}
    from tfdefense.zoo import cards  # atomic writes: a server polling the config never reads half a file

    cards.write_text(os.path.join(base_dir, "models.config"), models_config(sorted(written), base_path))
    cards.write_text(os.path.join(base_dir, "batching.config"), batching_config())
    return written
