"""The classifiers of Table 5 (aegan_rs.txt, after Defense-GAN): A, B and C.

Each builder returns a `keras.Sequential` that outputs **logits**: attacks need
them, and the softmax lives in the loss (`from_logits=True`).

Reference:
    Samangouei et al., Defense-GAN, ICLR 2018 (Table 5 of the AE-GAN+rs paper).
"""

import keras
from keras import layers

INPUT_SHAPE = (28, 28, 1)


def classifier_a(input_shape=INPUT_SHAPE, num_classes=10, filters=64, units=128, name="classifier_a"):
    """Conv(64,5x5,1)-ReLU-Conv(64,5x5,2)-ReLU-Dropout(.25)-FC(128)-ReLU-Dropout(.5)-FC(10).

    Example:
        >>> classifier_a().count_params()
        924746
    """
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(filters, 5, strides=1, padding="valid", activation="relu"),
        layers.Conv2D(filters, 5, strides=2, padding="valid", activation="relu"),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(units, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes),
    ], name=name)


def classifier_b(input_shape=INPUT_SHAPE, num_classes=10, filters=64, name="classifier_b"):
    """Conv(64,8x8,2)-ReLU-Conv(128,6x6,2)-ReLU-Conv(128,5x5,1)-ReLU-Dropout(.5)-FC(10).

    Padding as in the Defense-GAN/CleverHans model B: SAME, VALID, VALID.

    Example:
        >>> classifier_b().count_params()
        710218
    """
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(filters, 8, strides=2, padding="same", activation="relu"),
        layers.Conv2D(2 * filters, 6, strides=2, padding="valid", activation="relu"),
        layers.Conv2D(2 * filters, 5, strides=1, padding="valid", activation="relu"),
        layers.Dropout(0.5),
        layers.Flatten(),
        layers.Dense(num_classes),
    ], name=name)


def classifier_c(input_shape=INPUT_SHAPE, num_classes=10, units=200, name="classifier_c"):
    """FC(200)-ReLU-Dropout(.5)-FC(200)-ReLU-Dropout(.5)-FC(10).

    Example:
        >>> classifier_c().count_params()
        199210
    """
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Flatten(),
        layers.Dense(units, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(units, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes),
    ], name=name)


BUILDERS = {"a": classifier_a, "b": classifier_b, "c": classifier_c}


def build_classifier(arch, **kwargs):
    """Builds classifier ``arch`` in {"a", "b", "c"} with builder kwargs."""
    if arch not in BUILDERS:
        raise ValueError(f"Unknown classifier architecture {arch!r}; choose one of {sorted(BUILDERS)}.")
    return BUILDERS[arch](**kwargs)
