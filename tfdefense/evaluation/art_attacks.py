"""The Adversarial Robustness Toolbox (ART) against zoo models.

`estimator(logits_fn)` turns any logits function into an ART
``TensorFlowV2Classifier`` whose gradient is that function's; with
`threats.white_box_fn(model)` it is the defense's white-box gradient (exact,
or BPDA through the declared surrogate with EOT), so every ART attack attacks
the zoo under the threat model the defense calls for. `as_estimator(model,
threat)` does both steps. The functions below are ART attacks in the
package's attack form ``fn(logits_fn, x, y, *, ...) -> numpy``, so the
evaluation harness runs them like the CleverHans ones.

ART is an optional extra: ``pip install -e ".[art]"`` (also in ``[test]``).

Example:
    >>> import tfdefense
    >>> from tfdefense import art_attacks
    >>> from art.attacks.evasion import ProjectedGradientDescent
    >>> clf = art_attacks.as_estimator(tfdefense.load("aegan_mnist"), "white")     # doctest: +SKIP
    >>> x_adv = ProjectedGradientDescent(clf, eps=0.3, eps_step=0.01).generate(x)  # doctest: +SKIP

Reference:
    Nicolae et al., Adversarial Robustness Toolbox v1.0.0 (2018); Croce &
    Hein, Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks (AutoAttack, ICML 2020).
"""

import logging
import warnings

import numpy as np
import tensorflow as tf

from tfdefense.defense.defended import as_defended
from tfdefense.evaluation import threats


def _art():
    try:
        with warnings.catch_warnings():  # ART warns about PyTorch on import
            warnings.simplefilter("ignore")
            import art.attacks.evasion as evasion
            from art.estimators.classification import TensorFlowV2Classifier
    except ImportError as e:  # pragma: no cover
        raise ImportError("ART attacks need the Adversarial Robustness Toolbox: "
                          "pip install -e '.[art]' (adversarial-robustness-toolbox==1.20.1).") from e
    logging.getLogger("art").setLevel(logging.WARNING)
    return evasion, TensorFlowV2Classifier


def estimator(logits_fn, input_shape, nb_classes=None, clip_values=(0.0, 1.0)):
    """An ART classifier over ``logits_fn`` (float32 [N, *input_shape] -> logits), gradients included.
    ``nb_classes`` defaults to the width of ``logits_fn``'s output on one blank image."""
    _, TensorFlowV2Classifier = _art()
    input_shape = tuple(int(d) for d in input_shape)
    if nb_classes is None:
        nb_classes = int(logits_fn(tf.zeros([1, *input_shape])).shape[-1])
    return TensorFlowV2Classifier(
        model=lambda x, training=False: logits_fn(tf.cast(x, tf.float32)), nb_classes=nb_classes,
        input_shape=input_shape, loss_object=tf.keras.losses.CategoricalCrossentropy(from_logits=True),
        clip_values=clip_values)


def as_estimator(model, threat="white", **white_box):
    """A zoo model under ``threat`` ("gray": its bare classifier; "white": `threats.white_box_fn`)."""
    if threat not in ("gray", "white"):
        raise ValueError(f"threat must be 'gray' or 'white', got {threat!r}.")
    model = as_defended(model)
    fn = threats.gray_box_fn(model) if threat == "gray" else threats.white_box_fn(model, **white_box)
    return estimator(fn, model.image_shape, model.num_classes)


def _run(attack, x, y):
    x = np.asarray(x, np.float32)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch [N, H, W, C], got shape {x.shape}.")
    labels = None if y is None else np.eye(attack.estimator.nb_classes, dtype=np.float32)[np.asarray(y)]
    return np.asarray(attack.generate(x, y=labels), np.float32)


def autoattack(logits_fn, x, y, *, eps, eps_step=0.1, max_iter=100, restarts=1, square_queries=1000,
               batch_size=128, seed=0):
    """AutoAttack (Linf) through ART: APGD-CE, APGD-DLR and Square, keeping each image's first success.

    ART's own default ensemble (5 restarts of each APGD, DeepFool, 5 x 5000
    Square queries) takes minutes per image on 2 CPU cores; the settings here
    are those of Croce & Hein's "standard" version (1 restart of 100 APGD
    iterations), with Square's queries a setting. ART has no FAB.
    """
    evasion, _ = _art()
    np.random.seed(seed)  # APGD's and Square's random starts draw from numpy's global generator
    clf = estimator(logits_fn, np.shape(x)[1:])
    apgd = [evasion.AutoProjectedGradientDescent(clf, eps=eps, eps_step=eps_step, max_iter=max_iter,
                                                 nb_random_init=restarts, batch_size=batch_size, loss_type=loss,
                                                 verbose=False)
            for loss in ("cross_entropy", "difference_logits_ratio")]
    ensemble = apgd + [evasion.SquareAttack(clf, eps=eps, max_iter=square_queries, nb_restarts=1,
                                            batch_size=batch_size, verbose=False)]
    return _run(evasion.AutoAttack(clf, eps=eps, eps_step=eps_step, attacks=ensemble, batch_size=batch_size),
                x, y)


def square(logits_fn, x, y, *, eps, max_iter=1000, p_init=0.8, nb_restarts=1, batch_size=128, seed=0):
    """ART's Square attack (Linf, gradient-free: it only queries the forward pass)."""
    evasion, _ = _art()
    np.random.seed(seed)
    return _run(evasion.SquareAttack(estimator(logits_fn, np.shape(x)[1:]), eps=eps, max_iter=max_iter, p_init=p_init,
                                     nb_restarts=nb_restarts, batch_size=batch_size, verbose=False), x, y)


def jsma(logits_fn, x, y, *, theta=1.0, gamma=0.1, batch_size=128, seed=0):
    """ART's Jacobian saliency map attack (Papernot et al. 2016), untargeted as ART runs it:
    a random target class per image (drawn with ``seed``); ``gamma`` is the largest fraction of
    pixels changed."""
    evasion, _ = _art()
    np.random.seed(seed)
    return _run(evasion.SaliencyMapMethod(estimator(logits_fn, np.shape(x)[1:]), theta=theta, gamma=gamma, batch_size=batch_size,
                                          verbose=False), x, None)


# CW-Linf is the package's own batched one (`tfdefense.attacks.cw_linf`): ART's handles one image at a
# time and took over 150 s per MNIST image here.
def as_preprocessor(model, seed=0, bpda=None):
    """A zoo purifier as an ART `PreprocessorTensorFlowV2`, for ART users who bring their own estimator.

    Its ``forward`` is the real purifier of ``model`` (a `DefendedClassifier`, detectors' routing included)
    with the gradient its threat model calls for (`threats.purified_fn`: exact when the purifier is
    differentiable, BPDA through its declared surrogate otherwise); ``estimate_forward`` is that surrogate
    (or the purifier itself when differentiable). ART differentiates ``forward`` when every preprocessor is
    a TensorFlow one and ``estimate_forward`` otherwise; both give the same gradient here. A random purifier
    draws from ``seed``; average over seeds (EOT) with ART's own tools or `threats.white_box_fn`.

    Example:
        >>> from art.estimators.classification import TensorFlowV2Classifier     # doctest: +SKIP
        >>> clf = TensorFlowV2Classifier(my_model, nb_classes=10, input_shape=(32, 32, 3), clip_values=(0, 1),
        ...     preprocessing_defences=[as_preprocessor(tfdefense.load_folder("runs/magnet_yours/export"))])
    """
    _art()
    from art.defences.preprocessor.preprocessor import PreprocessorTensorFlowV2

    purify = threats.purified_fn(model, seed, bpda)
    exact = threats.gradient_kind(model, bpda) == "exact"
    surrogate = tf.identity if threats.gradient_kind(model, bpda) == "bpda:identity" else model.purifier.surrogate

    class ZooPurifier(PreprocessorTensorFlowV2):
        """`tfdefense` purifier of one zoo model (see `as_preprocessor`)."""

        def __init__(self):
            super().__init__(is_fitted=True, apply_fit=False, apply_predict=True)

        def forward(self, x, y=None):
            return purify(tf.cast(x, tf.float32)), y

        def estimate_forward(self, x, y=None):
            x = tf.cast(x, tf.float32)
            return purify(x) if exact else surrogate(x)

    return ZooPurifier()
