"""The black-box substitute attack of Papernot et al. (2017).

The attacker sees only the defended model's labels. It labels a small seed
set (the 150 ``holdout`` test images) with the oracle, trains a substitute
(classifier B or C), and grows the set by Jacobian-based augmentation: each
round adds x + lambda * sign(d substitute_{oracle(x)}(x) / dx). Adversarial
examples crafted on the substitute (FGSM) are then transferred.

Example:
    >>> sub = train_substitute(oracle_labels_fn, x_holdout, arch="b")     # doctest: +SKIP
    >>> x_adv = attacks.fgsm(sub.model, x, y, eps=0.3)                     # doctest: +SKIP

Reference:
    Papernot et al., Practical black-box attacks against machine learning,
    ASIA CCS 2017; AE-GAN+rs paper section 4.1 (150 hold-out images).
"""

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from tfdefense.utils import progress
from tfdefense.defense.defended import as_defended
from tfdefense.defense.networks import build_classifier


@dataclasses.dataclass
class Substitute:
    model: keras.Model
    arch: str
    rounds: int
    training_set_size: int
    oracle_queries: int


def oracle_from(model, batch_size=256):
    """Label function of a (defended) model: numpy images -> int labels."""
    model = as_defended(model)
    return lambda x: model.defend(x, batch_size=batch_size)["label"].astype(np.int64)


def jacobian_augment(model, x, labels, lmbda):
    """x + lmbda * sign of the gradient of the substitute's logit for ``labels``."""
    x_t = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        logits = model(x_t, training=False)
        chosen = tf.reduce_sum(logits * tf.one_hot(labels, logits.shape[-1]), axis=1)
    grad = tape.gradient(chosen, x_t)
    return np.clip(x + lmbda * np.sign(grad.numpy()), 0.0, 1.0).astype(np.float32)


def train_substitute(oracle, x_seed, *, arch="b", rounds=6, epochs=10, lmbda=0.1, batch_size=128,
                     learning_rate=1e-3, seed=0, **builder_kwargs):
    """Trains a substitute of ``oracle`` from ``x_seed`` with Jacobian augmentation.

    Args:
        oracle: numpy images -> labels (e.g. `oracle_from(defended_model)`).
        x_seed: the attacker's initial images (the 150 ``holdout`` images).
        arch: substitute architecture "b" (conv) or "c" (fully connected).
        rounds: substitute training rounds; the set doubles between rounds.
        epochs: epochs per round.
        lmbda: augmentation step (the sign alternates every 3 rounds as in
            the paper's periodic step size).
        **builder_kwargs: for `build_classifier`; ``input_shape`` defaults to the seed images' shape
            and ``num_classes`` should be the oracle's (10 by default).

    Returns:
        A `Substitute` with the trained model and the query count.
    """
    if rounds < 1 or epochs < 1:
        raise ValueError("rounds and epochs must be >= 1.")
    keras.utils.set_random_seed(seed)
    x = np.asarray(x_seed, np.float32)
    model = build_classifier(arch, **{"input_shape": x.shape[1:], **builder_kwargs})  # the images' own shape
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y = oracle(x)
    queries = len(x)
    for rho in progress.bar(range(rounds), desc=f"substitute {arch}"):
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
        if rho == rounds - 1:
            break
        step = lmbda * (-1 if (rho // 3) % 2 else 1)
        x_new = jacobian_augment(model, x, y, step)
        y_new = oracle(x_new)
        queries += len(x_new)
        x, y = np.concatenate([x, x_new]), np.concatenate([y, y_new])
    return Substitute(model, arch, rounds, int(len(x)), int(queries))


def save_substitute(substitute, path, about=None):
    """Writes a trained substitute to the folder ``path`` (``substitute.keras`` + ``substitute.json``), with
    ``about`` (what it was trained against) beside it, so the shards of one run attack the same one."""
    os.makedirs(path, exist_ok=True)
    substitute.model.save(os.path.join(path, "substitute.keras"))
    meta = {"arch": substitute.arch, "rounds": substitute.rounds, "training_set_size": substitute.training_set_size,
            "oracle_queries": substitute.oracle_queries, "about": about or {}}
    with open(os.path.join(path, "substitute.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return path


def load_substitute(path, about=None):
    """The substitute `save_substitute` wrote in ``path``.

    Raises:
        FileNotFoundError: no substitute there.
        ValueError: it was trained against something else than ``about`` says.
    """
    meta_path, model_path = os.path.join(path, "substitute.json"), os.path.join(path, "substitute.keras")
    if not (os.path.exists(meta_path) and os.path.exists(model_path)):
        raise FileNotFoundError(f"no substitute in {path} (want substitute.json and substitute.keras): train it "
                                f"once with `tfdefense substitute NAME {path}`.")
    with open(meta_path) as f:
        meta = json.load(f)
    if about is not None and meta.get("about") != about:
        raise ValueError(f"the substitute in {path} was trained for {json.dumps(meta.get('about'))}, not "
                         f"{json.dumps(about)}: train one for this defense and these settings.")
    model = keras.saving.load_model(model_path, compile=False)
    return Substitute(model, meta["arch"], meta["rounds"], meta["training_set_size"], meta["oracle_queries"])
