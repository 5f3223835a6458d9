"""The defense contract: the two roles every defense in the zoo fills in.

Everything that consumes a defense (`DefendedClassifier`, the threat models,
calibration, the evaluation harness, export, the CLI, model cards) speaks
only to these two base classes, so a new kind of defense is a new family
folder, never a new branch in a shared module.

**Purifier** (`PurifierLayer`): a serializable Keras layer,
``call(x, seed=0) -> {"images": [N, H, W, C], "errors": [N] (optional)}``,
that declares

* ``differentiable``: whether its own gradient is the one an attacker should
  use (an autoencoder reformer, an image-to-image generator). White-box
  attacks then differentiate the whole pipeline end to end;
* ``surrogate(x)``: what BPDA differentiates instead when it is not (a latent
  search: G(F(x)) for AE-GAN+rs, identity for Defense-GAN), also the cheap
  path that a detector's bypass sends unflagged inputs through, and
  ``surrogate_name``, what it is, for reports ("identity", "gfx", ...);
* ``random`` and ``eot_samples``: whether its output depends on ``seed`` (so
  EOT applies) and how many samples a white-box attack averages by default.

**Detector** (`DetectorLayer`): a serializable Keras layer,
``score(x, purification=None, seed=0) -> [N]`` (higher is more suspicious)
with a ``threshold`` chosen on clean validation data at a target
false-positive rate (None: the detector flags nothing). Scores above
``flag_level`` are flagged and, for a rejecting detector, scores above
``reject_level`` rejected; both are the threshold unless a detector says
otherwise (FM-Defense flags any score above 0 and rejects above the
threshold). The rules:

* ``differentiable``: a detector-aware white-box attack can put its score in
  the loss (else the attack must approximate it);
* ``needs_purification``: the score is read from the purifier's output
  (``errors`` of a latent search: INC), so it cannot be computed first;
* ``bypass``: unflagged inputs skip the purifier and take its surrogate
  (AE-GAN+rs sends clean-looking inputs through G(F(x)) only);
* ``rejects``: an input above ``reject_level`` gets the reject decision
  (``rejected`` in the outputs) instead of being trusted after purification;
* ``random``: the score depends on its ``seed`` (FM-Defense's morphs); the
  pipeline passes its seed to every detector;
* ``attackable``: a detector-aware attack can put ``excess`` in its loss:
  the score's own gradient when ``differentiable``, else a differentiable
  stand-in the detector defines (BPDA for the detector).

While `serving_graph` is active (export traces the served graph under it), no gradient will be taken of
what a layer builds, and a layer may leave out what only a gradient needs (`for_serving`).

A defense is ``DefendedClassifier(classifier, purifier=None, detectors=())``:
a robustly trained classifier has neither, MagNet has a purifier and two
detectors.

Example:
    >>> import keras, tensorflow as tf
    >>> class Blur(PurifierLayer):
    ...     differentiable = True
    ...     def call(self, x, seed=0):
    ...         return {"images": tf.nn.avg_pool2d(x, 3, 1, "SAME")}
    >>> Blur()(tf.zeros([2, 28, 28, 1]))["images"].shape
    TensorShape([2, 28, 28, 1])
"""

import contextlib
import threading

import keras
import tensorflow as tf

from tfdefense.defense import cost

_TRACING = threading.local()


@contextlib.contextmanager
def serving_graph():
    """Traces made inside are served, never differentiated (`tfdefense.zoo.export` traces under it)."""
    before = getattr(_TRACING, "serving", False)
    _TRACING.serving = True
    try:
        yield
    finally:
        _TRACING.serving = before


def for_serving():
    """True inside `serving_graph`: DiffPure then runs its sampler as one loop instead of unrolled
    steps that each keep a checkpointed gradient.

    Example:
        >>> with serving_graph():
        ...     for_serving()
        True
        >>> for_serving()
        False
    """
    return getattr(_TRACING, "serving", False)


class PurifierLayer(keras.layers.Layer):
    """Base class of purifiers: images -> purified images (see the module docstring).

    Subclasses implement ``call(x, seed=0)`` returning a dict with ``images``
    (and ``errors`` if they measure a reconstruction error), and override the
    declarations below where they differ.
    """

    differentiable = False
    # What ``surrogate`` is, named for reports: "identity", "gfx" (G(F(x))), "self" (the purifier itself).
    surrogate_name = "identity"
    # Its output images are exactly ``surrogate(x)`` (an autoencoder reformer): the pipeline computes them once.
    output_is_surrogate = False

    @property
    def random(self):
        """Whether the output depends on the ``seed`` argument."""
        return False

    @property
    def eot_samples(self):
        """Samples of the randomness a white-box attack averages by default."""
        return 4 if self.random else 1

    def surrogate(self, x):
        """The differentiable approximation BPDA uses, and the bypass path (identity here)."""
        return tf.cast(x, tf.float32)

    def flops(self):
        """FLOPs (2 x multiply-adds of its dense and convolution layers) to purify one image: by default
        each network the layer holds, run once. A purifier that runs a network many times (a search, a
        sampler, one decode per class) counts its own."""
        return int(sum(cost.forward_flops(m) for m in cost.held_models(self)))

    def surrogate_flops(self):
        """FLOPs per image of ``surrogate`` (0 for identity)."""
        return 0

    def call(self, x, seed=0):
        raise NotImplementedError(f"{type(self).__name__} must implement call(x, seed=0).")


class DetectorLayer(keras.layers.Layer):
    """Base class of detectors: images -> one suspicion score each (see the module docstring).

    Args:
        threshold: scores above it are flagged; None flags nothing (and turns
            a bypass off, so everything is purified).
        bypass: unflagged inputs take the purifier's surrogate instead of the purifier.
        rejects: flagged inputs are rejected.
    """

    differentiable = True
    needs_purification = False
    random = False

    def __init__(self, threshold=None, bypass=False, rejects=True, **kwargs):
        super().__init__(**kwargs)
        self.threshold = None if threshold is None else float(threshold)
        self.bypass = bool(bypass)
        self.rejects = bool(rejects)

    def score(self, x, purification=None, seed=0):
        """[N] suspicion scores of images ``x``; ``purification`` is the purifier's output for a detector
        that ``needs_purification``, ``seed`` the pipeline's seed for a ``random`` one."""
        raise NotImplementedError(f"{type(self).__name__} must implement score(x, purification=None, seed=0).")

    @property
    def flag_level(self):
        """Scores above it are flagged (the threshold, unless a detector flags at another level)."""
        return self.threshold

    @property
    def reject_level(self):
        """Scores above it are rejected by a rejecting detector (the threshold unless overridden)."""
        return self.threshold

    @property
    def uses_surrogate(self):
        """Whether ``score`` runs the purifier's surrogate (bound by the defense, computed once per pass)."""
        return False

    @property
    def attackable(self):
        """Whether a detector-aware attack can differentiate ``excess`` (by default: the score itself)."""
        return self.differentiable

    def bind(self, purifier, classifier=None, surrogate=None):
        """Called by `DefendedClassifier` with its purifier (or None) and classifier.
        A detector may score against the purifier's surrogate, or ask the
        protected classifier, instead of holding its own copy of the same
        networks; only bound methods are kept, so nothing is tracked (and
        saved) twice. ``surrogate``: the defense's own way to compute the
        purifier's surrogate (once per input, however many parts ask)."""
        self._surrogate = None if purifier is None else (surrogate or purifier.surrogate)
        self._surrogate_flops = 0 if purifier is None else purifier.surrogate_flops()
        self._classify = None if classifier is None else classifier.__call__
        self._classifier_flops = 0 if classifier is None else cost.forward_flops(classifier)

    def flops(self):
        """FLOPs per image of ``score``: by default each network the detector holds, run once (0 for a
        detector that reads the purifier's output)."""
        return int(sum(cost.forward_flops(m) for m in cost.held_models(self)))

    def call(self, x, purification=None, seed=0):
        return self.score(x, purification, seed)

    def flag(self, score):
        """Boolean flags: scores above ``flag_level`` (all False without a threshold)."""
        if self.threshold is None:
            return tf.zeros_like(score, tf.bool)
        return score > self.flag_level

    def reject(self, score):
        """Boolean reject decisions: a rejecting detector's scores above ``reject_level``, none otherwise."""
        if self.threshold is None or not self.rejects:
            return tf.zeros_like(score, tf.bool)
        return score > self.reject_level

    def excess(self, x):
        """relu(score / threshold - 1): how far above its threshold an input is, in units of the
        threshold, so detectors of different scales add up in a detector-aware attack loss."""
        scale = max(abs(self.threshold), 1e-12)  # tests use negative thresholds to flag everything
        return tf.nn.relu(self.score(x) - self.threshold) / scale

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold, "bypass": self.bypass, "rejects": self.rejects})
        return config
