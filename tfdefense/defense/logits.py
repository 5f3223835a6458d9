"""Classifiers that end in a softmax, turned into classifiers of logits.

Every attack in the zoo differentiates logits. A user's classifier that ends
in a softmax hands an attack probabilities instead, whose gradient vanishes
where the softmax saturates, and the attack looks weaker than it is
(Carlini & Wagner 2017, Section 5). `logits_model` finds a final softmax
(an ``activation="softmax"`` on the last layer, a ``Softmax`` layer or an
``Activation("softmax")``) and returns the same network without it: the
softmax's input, which has the same argmax. A model whose structure cannot
be read (a subclassed model) and whose outputs are probabilities is refused
with a message that says so, never attacked through its softmax.

Example:
    >>> import keras
    >>> probs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    >>> logits = logits_model(probs)                  # doctest: +SKIP
    >>> logits.layers[-1].activation.__name__         # doctest: +SKIP
    'linear'
"""

import warnings

import keras
import numpy as np


def _is_softmax(fn):
    return fn is keras.activations.softmax or getattr(fn, "__name__", "") == "softmax"


def ends_in_softmax(model):
    """"activation" (the last layer's own activation), "layer" (a separate softmax layer), or None."""
    layers = getattr(model, "layers", None)
    if not layers:
        return None
    last = layers[-1]
    if isinstance(last, keras.layers.Softmax) or (isinstance(last, keras.layers.Activation)
                                                  and _is_softmax(last.activation)):
        return "layer"
    if _is_softmax(getattr(last, "activation", None)):
        return "activation"
    return None


def _without_activation(model):
    last = model.layers[-1]

    def clone(layer):
        config = layer.get_config()
        if layer is last:
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _looks_like_probabilities(model):
    try:
        shape = tuple(model.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        return False
    if any(d is None for d in shape):
        return False
    out = np.asarray(model(np.random.default_rng(0).random((4, *shape), dtype=np.float32), training=False))
    return out.ndim == 2 and out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-4)


def logits_model(model):
    """``model`` itself when it outputs logits; else the same network without its final softmax.

    Raises:
        ValueError: a model whose outputs are probabilities and whose final softmax cannot be removed.
    """
    if getattr(model, "_tfdefense_logits", False):
        return model
    kind = ends_in_softmax(model)
    name = getattr(model, "name", type(model).__name__)
    if kind is None:
        if isinstance(model, keras.Model) and not isinstance(model, keras.Sequential) and not model._is_graph_network \
                and _looks_like_probabilities(model):
            raise ValueError(f"classifier {name!r} outputs probabilities (rows sum to 1) and is a subclassed model, "
                             "so its softmax cannot be removed; pass a model that returns logits (attacks on "
                             "probabilities are weakened by the softmax's vanishing gradient).")
        return model
    if kind == "layer":
        stripped = keras.Model(model.inputs, model.layers[-1].input, name=f"{name}_logits")
    else:
        stripped = _without_activation(model)
    warnings.warn(f"classifier {name!r} ends in a softmax; tfdefense uses its logits (the softmax's input, "
                  "same argmax), since attacking probabilities weakens gradient attacks.", UserWarning, stacklevel=3)
    stripped._tfdefense_logits = True
    return stripped
