"""Config helpers for layers and models that hold other Keras objects."""

import keras


def serialize_parts(obj, keys):
    """{key: serialized sub-object or None} for ``keys`` attributes of ``obj``."""
    return {k: keras.saving.serialize_keras_object(getattr(obj, k)) if getattr(obj, k) is not None else None
            for k in keys}


def deserialize_parts(config, keys):
    """A copy of ``config`` with the ``keys`` entries turned back into objects."""
    config = dict(config)
    for key in keys:
        if config.get(key) is not None:
            config[key] = keras.saving.deserialize_keras_object(config[key])
    return config
