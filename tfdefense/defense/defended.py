"""`DefendedClassifier`: detectors -> purifier -> classifier, as one keras.Model.

Plain composition of the contract's roles (`tfdefense.contract`): any
purifier (or none), any number of detectors, one classifier. It is what
`tfdefense.load` returns for every entry (a bare classifier is a defense with
neither) and what `tfdefense export` serves. Calling it returns logits, like
any classifier, so it drops into existing code; `defend` returns everything
the pipeline computed.

Every way in checks its input the same way: `defend` and `predict` in numpy
(`check_images`, a ValueError that says what was wrong), `__call__` by dtype
at trace time and by value inside the graph (`validate_images`), which is also
what the exported SavedModel runs.

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("aegan_mnist")                      # doctest: +SKIP
    >>> logits = model.predict(x)                                  # doctest: +SKIP
    >>> out = model.defend(x)  # logits, label, purified, score, is_adversarial, rejected
"""

import keras
import numpy as np
import tensorflow as tf

from tfdefense.utils import batching
from tfdefense.defense import cost
from tfdefense.defense.logits import logits_model
from tfdefense.defense.serialization import deserialize_parts, serialize_parts

MAX_BATCH = 1024
PARTS = ("classifier", "purifier")
OUTPUTS = ("logits", "label", "purified", "score", "is_adversarial", "rejected")
_FLOATS = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def model_image_shape(classifier):
    """(H, W, C) a keras classifier takes, read from its input; None where it does not say."""
    try:
        shape = tuple(classifier.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        shape = tuple(getattr(classifier, "input_shape", None) or ())[1:]
    if len(shape) != 3 or any(d is None for d in shape):
        return None
    return tuple(int(d) for d in shape)


def validate_images(x, image_shape, max_batch=MAX_BATCH):
    """In-graph checks that turn bad input into a clear error.

    `tf.ensure_shape` comes first: a wrong-rank tensor reaching a oneDNN
    kernel can abort the whole process instead of raising.
    """
    x = tf.ensure_shape(x, [None, *image_shape])
    n = tf.shape(x)[0]
    checks = [
        tf.debugging.assert_positive(n, message="empty batch: send at least one image"),
        tf.debugging.assert_less_equal(n, max_batch, message=f"batch larger than {max_batch} images"),
        tf.debugging.assert_all_finite(x, "images contain NaN or Inf"),
        tf.debugging.assert_greater_equal(tf.reduce_min(x), 0.0, message="pixel values below 0; "
                                          "expected float32 in [0, 1]"),
        tf.debugging.assert_less_equal(tf.reduce_max(x), 1.0, message="pixel values above 1; "
                                       "expected float32 in [0, 1] (divide uint8 images by 255)"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(x)


def check_images(x, image_shape):
    """The same checks in numpy for Python callers, raising ValueError; returns float32 numpy.

    Example:
        >>> check_images(np.zeros((2, 28, 28, 1)), (32, 32, 3))
        Traceback (most recent call last):
        ValueError: this model takes images of shape [N, 32, 32, 3]; got (2, 28, 28, 1).
    """
    image_shape = tuple(image_shape)
    want = f"[N, {', '.join(map(str, image_shape))}]"
    if x is None:
        raise ValueError(f"images are None; pass float32 images {want} in [0, 1].")
    if isinstance(x, (tf.Tensor, tf.Variable)):
        x = x.numpy()
    x = np.asarray(x)
    if x.dtype == bool or not np.issubdtype(x.dtype, np.floating):
        hint = " (for uint8 pixels pass x / 255)" if np.issubdtype(x.dtype, np.integer) else ""
        raise ValueError(f"images must be float32 in [0, 1], got dtype {x.dtype}{hint}.")
    x = x.astype(np.float32, copy=False)
    if x.ndim == 3 and x.shape == image_shape:
        raise ValueError(f"got one image of shape {x.shape}; pass a batch {want} (x[None]).")
    if x.ndim != 4 or x.shape[1:] != image_shape:
        raise ValueError(f"this model takes images of shape {want}; got {x.shape}.")
    if len(x) == 0:
        raise ValueError("empty batch: pass at least one image.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"images contain NaN or Inf (in {int(np.sum(~np.all(np.isfinite(x), axis=(1, 2, 3))))}"
                         " of them).")
    if x.min() < 0 or x.max() > 1:
        # Enough digits that 1.0000001 is not printed as 1.
        raise ValueError(f"pixel values must lie in [0, 1], got [{x.min():.9g}, {x.max():.9g}].")
    return x


def check_dtype(x):
    """Refuses non-float tensors by dtype (known at trace time) before any cast hides them."""
    dtype = tf.as_dtype(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype)
    if dtype not in _FLOATS:
        hint = " (for uint8 pixels pass x / 255)" if dtype.is_integer else ""
        raise ValueError(f"images must be float32 in [0, 1], got dtype {dtype.name}{hint}.")


@keras.saving.register_keras_serializable(package="tfdefense")
class DefendedClassifier(keras.Model):
    """A classifier behind an optional purifier and any number of detectors.

    The pipeline, for a batch x:

    1. detectors that do not need the purifier score x; if one of them
       bypasses, unflagged images take the purifier's surrogate (the cheap
       path) and only flagged ones are purified;
    2. otherwise every image is purified (or passed as is without a purifier);
    3. detectors that read the purifier's output score it;
    4. the classifier labels the purified images.

    ``is_adversarial`` is any detector's flag; ``rejected`` any rejecting
    detector's flag; ``score`` is the detector's score with one detector, the
    largest score/threshold ratio with several, zeros with none.

    Args:
        classifier: keras model, images -> logits.
        purifier: a `tfdefense.contract.PurifierLayer`, or None.
        detectors: `tfdefense.contract.DetectorLayer`s (names must differ).
        max_batch: largest accepted batch.
        image_shape: (H, W, C) of the images; default: the classifier's input shape.

    Attributes:
        card: the model card `tfdefense.load` verified the weights against (a
            dict: files, training, inference, measured numbers), or None for a
            model built by hand.
    """

    def __init__(self, classifier, purifier=None, detectors=(), max_batch=MAX_BATCH, image_shape=None, **kwargs):
        super().__init__(**kwargs)
        self.classifier = logits_model(classifier)
        image_shape = image_shape or model_image_shape(self.classifier)
        if image_shape is None:
            raise ValueError(f"{getattr(classifier, 'name', classifier)!r} does not declare its input shape; "
                             "pass image_shape=(H, W, C) (or build it with keras.Input).")
        self.image_shape = tuple(int(d) for d in image_shape)
        self.num_classes = int(self.classifier.outputs[0].shape[-1]) if getattr(self.classifier, "outputs", None) \
            else int(self.classifier(tf.zeros([1, *self.image_shape]), training=False).shape[-1])
        self.purifier = purifier
        self.detectors = list(detectors)
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must differ, got {names}.")
        late = [d.name for d in self.detectors if d.needs_purification]
        if late and purifier is None:
            raise ValueError(f"detectors {late} read the purifier's output, but there is no purifier.")
        if late and any(d.bypass for d in self.detectors):
            raise ValueError(f"detectors {late} read the purifier's output, so no detector may bypass it.")
        if purifier is None and any(d.bypass for d in self.detectors):
            raise ValueError("a detector bypasses the purifier, but there is no purifier.")
        self._pass = _Pass()  # within one pass of the pipeline: the purifier's surrogate of its input, once
        for d in self.detectors:
            d.bind(purifier, classifier, self._shared_surrogate if purifier is not None else None)
        self.max_batch = int(max_batch)
        self.card = None
        self._defend_fn = tf.function(self.pipeline, reduce_retracing=True)
        self.built = True  # every part arrives built; nothing is created on first call

    # -- settings -----------------------------------------------------------------------------
    @property
    def thresholds(self):
        """{detector name: threshold or None}."""
        return {d.name: d.threshold for d in self.detectors}

    @property
    def threshold(self):
        """The threshold of a single-detector defense (None without detectors)."""
        if len(self.detectors) > 1:
            raise AttributeError(f"{self.name} has {len(self.detectors)} detectors; use .thresholds.")
        return self.detectors[0].threshold if self.detectors else None

    def set_thresholds(self, thresholds):
        """Sets detector thresholds from ``{name: value or None}``; unknown names raise ValueError."""
        by_name = {d.name: d for d in self.detectors}
        unknown = set(thresholds) - set(by_name)
        if unknown:
            raise ValueError(f"no detector named {sorted(unknown)} in {self.name}; it has {sorted(by_name)}.")
        for name, value in thresholds.items():
            by_name[name].threshold = None if value is None else float(value)
        self._defend_fn = tf.function(self.pipeline, reduce_retracing=True)  # thresholds are traced constants

    # -- the pipeline -------------------------------------------------------------------------
    def _purify_subset(self, x, index, seed):
        sub = tf.gather(x, index)
        # Skip the purifier when nothing is flagged: empty batches upset oneDNN kernels.
        return tf.cond(tf.size(index) > 0, lambda: self.purifier(sub, seed=seed)["images"],
                       lambda: tf.zeros_like(sub))

    def _purify(self, x, seed, scores):
        """(purified images, purifier output or None), routing by the bypassing detectors' flags."""
        if self.purifier is None:
            return x, None
        bypassing = self._bypassing()
        if not bypassing:
            if self._output_is_shared_surrogate():
                return self._shared_surrogate(x), None
            purification = self.purifier(x, seed=seed)
            return tf.cast(purification["images"], tf.float32), purification
        flagged = tf.reduce_any(tf.stack([d.flag(scores[d.name]) for d in bypassing]), axis=0)
        index = tf.where(flagged)[:, 0]
        cheap = self._shared_surrogate(x)
        return tf.tensor_scatter_nd_update(cheap, index[:, None], self._purify_subset(x, index, seed)), None

    def _early_scores(self, x, seed=0):
        return {d.name: tf.cast(d.score(x, seed=seed), tf.float32) for d in self.detectors
                if not d.needs_purification}

    def _late_scores(self, x, purification, seed=0):
        return {d.name: tf.cast(d.score(x, purification, seed=seed), tf.float32) for d in self.detectors
                if d.needs_purification}

    def _decisions(self, x, scores):
        batch = tf.shape(x)[0]
        none = tf.zeros([batch], tf.bool)
        flags = [d.flag(scores[d.name]) for d in self.detectors]
        flagged = tf.reduce_any(tf.stack(flags), axis=0) if flags else none
        rejecting = [d.reject(scores[d.name]) for d in self.detectors if d.rejects]
        rejected = tf.reduce_any(tf.stack(rejecting), axis=0) if rejecting else none
        if not self.detectors:
            score = tf.zeros([batch], tf.float32)
        elif len(self.detectors) == 1:
            score = scores[self.detectors[0].name]
        else:
            score = tf.reduce_max(tf.stack([scores[d.name] / d.threshold if d.threshold else scores[d.name]
                                            for d in self.detectors]), axis=0)
        return {"score": score, "is_adversarial": flagged, "rejected": rejected}

    def pipeline(self, x, seed=0):
        """The whole defense as TensorFlow ops (traced by export and by white-box attacks).

        Args:
            x: float32 tensor [N, H, W, C] in [0, 1] (checked in graph).
            seed: int seed of the purifier's randomness.

        Returns:
            dict of tensors: ``logits``, ``label``, ``purified``, ``score``,
            ``is_adversarial``, ``rejected``.
        """
        x = validate_images(x, self.image_shape, self.max_batch)
        seed = tf.convert_to_tensor(seed, tf.int32)
        self._pass.open()
        try:
            scores = self._early_scores(x, seed)
            purified, purification = self._purify(x, seed, scores)
            scores.update(self._late_scores(x, purification, seed))
        finally:
            self._pass.close()
        logits = tf.cast(self.classifier(purified, training=False), tf.float32)
        return {"logits": logits, "label": tf.argmax(logits, axis=-1, output_type=tf.int32),
                "purified": purified, **self._decisions(x, scores)}

    def _bypassing(self):
        """Detectors whose flag routes an input to the purifier (the rest take the surrogate)."""
        return [d for d in self.detectors if d.bypass and d.threshold is not None]

    def _output_is_shared_surrogate(self):
        """Whether the pipeline's purified images are the shared surrogate itself (a reformer such as MagNet's,
        with no bypass routing and no detector that reads the purifier's output)."""
        return (self.purifier.output_is_surrogate and not self._bypassing()
                and not any(d.needs_purification for d in self.detectors))

    def _shared_surrogate(self, x):
        """The purifier's surrogate of ``x``, computed once per pass of the pipeline however many parts ask
        for it: MagNet's two detectors and its reformer all need AE(x), AE-GAN+rs's L1 detector and its
        bypass path both need G(F(x)). Outside a pass (a detector scored on its own) it is computed anew."""
        return self._pass.get(x, self.purifier.surrogate)

    def _all_scores(self, x, seed):
        scores = self._early_scores(x, seed)
        if any(d.needs_purification for d in self.detectors):
            seed = tf.convert_to_tensor(seed, tf.int32)
            scores.update(self._late_scores(x, self.purifier(x, seed=seed), seed))
        return scores

    def detect(self, x, seed=0):
        """Detector score and decisions only, in graph (purifying only for detectors that read the purifier)."""
        x = validate_images(x, self.image_shape, self.max_batch)
        return self._decisions(x, self._all_scores(x, seed))

    def detector_scores(self, x, seed=0):
        """{detector name: score tensor} for one batch of images, each detector on its own."""
        return self._all_scores(validate_images(tf.constant(check_images(x, self.image_shape)), self.image_shape, self.max_batch), seed)

    def detector_excess(self, x):
        """Sum over differentiable detectors with a threshold of how far x is above it
        (`DetectorLayer.excess`): the penalty of detector-aware attacks; None if there are none."""
        active = self.attackable_detectors()
        if not active:
            return None
        return tf.add_n([d.excess(x) for d in active])

    def flops(self):
        """FLOPs per image (2 x multiply-adds of the dense and convolution layers), counted from the layers.

        Returns {"classifier", "purifier", "detectors": {name: FLOPs}, "total"}: ``total`` is what an input
        the pipeline purifies costs. The purifier's surrogate runs once per input however many parts use
        it (`_shared_surrogate`): a detector that scores against it counts 0 and ``surrogate`` counts it
        once. With a bypass detector, an unflagged input takes the surrogate instead of the purifier, and
        ``unflagged`` is its cost.

        Example:
            >>> tfdefense.load("magnet_mnist").flops()["total"]      # doctest: +SKIP
        """
        classifier = cost.forward_flops(self.classifier)
        sharing = [d for d in self.detectors if self.purifier is not None and d.uses_surrogate]
        detectors = {d.name: 0 if d in sharing else d.flops() for d in self.detectors}
        base = classifier + sum(detectors.values())
        out = {"classifier": classifier, "purifier": 0, "detectors": detectors, "total": base}
        if self.purifier is None:
            return out
        surrogate = self.purifier.surrogate_flops()
        bypass, reformer = bool(self._bypassing()), self._output_is_shared_surrogate()
        out["purifier"] = self.purifier.flops()
        if sharing:
            out["surrogate"] = surrogate
        # A reformer's output is the surrogate itself; otherwise the purifier runs beside any shared surrogate.
        out["total"] = base + (surrogate if reformer else out["purifier"] + (surrogate if sharing else 0))
        if bypass:
            out["unflagged"] = base + surrogate
        return out

    def attackable_detectors(self):
        """Detectors whose score a detector-aware attack can differentiate."""
        return [d for d in self.detectors if d.attackable and d.threshold is not None]

    @property
    def tracing_count(self):
        """How many times the pipeline was traced (a new batch size traces once more, then batches of any
        size share one generalized trace; a retrace per batch would show here)."""
        return int(self._defend_fn.experimental_get_tracing_count())

    # -- keras and numpy entry points ---------------------------------------------------------
    def call(self, x, training=False, seed=0):
        check_dtype(x)
        return self._defend_fn(tf.cast(x, tf.float32), tf.constant(seed, tf.int32))["logits"]

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """`keras.Model.predict` after the same checks as `defend`."""
        return super().predict(check_images(x, self.image_shape), batch_size=batch_size, verbose=verbose, steps=steps,
                               callbacks=callbacks)

    def defend(self, x, seed=0, batch_size=256, desc=None):
        """Runs the whole pipeline on numpy images; returns a dict of numpy arrays.

        Args:
            x: float32 images [N, H, W, C] in [0, 1] (the model's ``image_shape``).
            seed: seed of the purifier's randomness (if any).
            batch_size: images per graph call.
            desc: show a progress bar over the batches under this label
                (a latent search of 1000 images takes minutes).

        Returns:
            dict: ``logits`` [N, 10], ``label`` [N], ``purified`` [N, H, W, C],
            ``score`` [N], ``is_adversarial`` [N] bool, ``rejected`` [N] bool.
        """
        x = check_images(x, self.image_shape)
        out = batching.concat_map(lambda b: self._defend_fn(tf.constant(b), tf.constant(seed, tf.int32)), x,
                                  batch_size, desc)
        return {k: out[k] for k in OUTPUTS}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config["detectors"] = [keras.saving.serialize_keras_object(d) for d in self.detectors]
        config["max_batch"] = self.max_batch
        config["image_shape"] = list(self.image_shape)
        return config

    @classmethod
    def from_config(cls, config):
        config = deserialize_parts(config, PARTS)
        config["detectors"] = [keras.saving.deserialize_keras_object(d) for d in config.get("detectors", [])]
        return cls(**config)


class _Pass:
    """One pass of the pipeline's memo: a function of its input computed once while the pass is open."""

    def __init__(self):
        self.active, self.x, self.value = False, None, None

    def open(self):
        self.active, self.x, self.value = True, None, None

    def close(self):
        self.active, self.x, self.value = False, None, None

    def get(self, x, fn):
        if not self.active:
            return fn(x)
        if self.x is not x:
            self.x, self.value = x, fn(x)
        return self.value


def as_defended(model, image_shape=None):
    """The one model type the evaluator takes: a `DefendedClassifier` as it is, any other keras
    classifier as a defense with neither purifier nor detector (``image_shape``: for a model that does
    not declare its input shape).

    Raises:
        TypeError: ``model`` is not a keras model.
    """
    if isinstance(model, DefendedClassifier):
        return model
    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a keras model or a DefendedClassifier, got {type(model).__name__}.")
    return DefendedClassifier(model, image_shape=image_shape, name=model.name)
