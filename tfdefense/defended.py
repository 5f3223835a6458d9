"""`DefendedClassifier`: detector -> purifier -> classifier, as one keras.Model.

It is what `tfdefense.load` returns for a defense and what `tfdefense export`
serves. Calling it returns logits, like any classifier, so it drops into
existing code; `defend` returns everything the pipeline computed.

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("aegan_mnist")                      # doctest: +SKIP
    >>> logits = model.predict(x)                                  # doctest: +SKIP
    >>> out = model.defend(x)      # logits, label, purified, score, is_adversarial
"""

import keras
import numpy as np
import tensorflow as tf

from tfdefense.purification import detection_scores
from tfdefense.serialization import deserialize_parts, serialize_parts

IMAGE_SHAPE = (28, 28, 1)
MAX_BATCH = 1024
PARTS = ("classifier", "purifier")


def inference_settings(defaults, entry, card, overrides):
    """A family's inference settings: defaults < entry < measured card < caller.

    Raises:
        TypeError: an override the family does not know, listing the known ones.
    """
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise TypeError(f"Unknown inference settings {sorted(unknown)}; choose from {sorted(defaults)}.")
    return {**defaults, **entry.get("inference", {}), **card.get("inference", {}), **overrides}


def validate_images(x, max_batch=MAX_BATCH):
    """In-graph checks that turn bad input into a clear error.

    `tf.ensure_shape` comes first: a wrong-rank tensor reaching a oneDNN
    kernel can abort the whole process instead of raising.
    """
    x = tf.ensure_shape(x, [None, *IMAGE_SHAPE])
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


def check_images(x):
    """The same checks in numpy for Python callers, raising ValueError."""
    if isinstance(x, tf.Tensor):
        x = x.numpy()
    x = np.asarray(x)
    if x.dtype != np.float32:
        if np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        else:
            raise ValueError(f"images must be float32 in [0, 1], got dtype {x.dtype} "
                             "(for uint8 pixels pass x / 255).")
    if x.ndim == 3 and x.shape == IMAGE_SHAPE:
        raise ValueError(f"got one image of shape {x.shape}; pass a batch [N, 28, 28, 1] (x[None]).")
    if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images must have shape [N, 28, 28, 1], got {x.shape}.")
    if len(x) == 0:
        raise ValueError("empty batch: pass at least one image.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"images contain NaN or Inf (in {int(np.sum(~np.all(np.isfinite(x), axis=(1, 2, 3))))}"
                         " of them).")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"pixel values must lie in [0, 1], got [{x.min():.3g}, {x.max():.3g}].")
    return x


@keras.saving.register_keras_serializable(package="tfdefense")
class DefendedClassifier(keras.Model):
    """A classifier protected by a generative purifier and a detector.

    With an encoder in the purifier and ``bypass=True`` (AE-GAN+rs) every image is scored by
    its reconstruction error against G(F(x)); images at or under ``threshold``
    take the cheap path G(F(x)), the rest go through the latent search. Without
    an encoder (Defense-GAN) every image is searched and the score is the
    search's final error. ``is_adversarial`` is score > threshold.

    Args:
        classifier: keras model, images -> logits.
        purifier: a `tfdefense.purification.Purifier`.
        threshold: detector threshold; None searches everything and flags nothing.
        metric: "l1" or "mse" detector score.
        bypass: send unflagged images through G(F(x)) instead of the search.
        max_batch: largest accepted batch.
    """

    def __init__(self, classifier, purifier, threshold=None, metric="l1", bypass=True,
                 max_batch=MAX_BATCH, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.purifier = purifier
        self.threshold = None if threshold is None else float(threshold)
        self.metric = metric
        self.bypass = bool(bypass and purifier.encoder is not None and threshold is not None)
        self.max_batch = int(max_batch)
        self._defend_fn = tf.function(self._defend, reduce_retracing=True)
        self.built = True  # every part arrives built; nothing is created on first call

    @property
    def decoder(self):
        return self.purifier.decoder

    @property
    def encoder(self):
        """The purifier's encoder (None for random-start search); owned by the purifier."""
        return self.purifier.encoder

    def reconstruct(self, x):
        """The cheap path G(F(x))."""
        return tf.cast(self.decoder(self.encoder(x, training=False), training=False), tf.float32)

    def _flag(self, score):
        if self.threshold is None:
            return tf.zeros_like(score, tf.bool)
        return score > self.threshold

    def detect(self, x, seed=0):
        """Detector score and flag for a batch, purifying only where the score needs the search.

        The score is the L1/MSE error against G(F(x)) with an encoder, else
        the final search error (INC). Runs in graph (used by the export).
        """
        x = validate_images(x, self.max_batch)
        if self.encoder is not None:
            score = detection_scores(x, self.reconstruct(x), self.metric)
        else:
            score = self.purifier(x, seed=seed)["errors"]
        return {"score": score, "is_adversarial": self._flag(score)}

    def _search_subset(self, x, index, seed):
        sub = tf.gather(x, index)
        # Skip the search when nothing is flagged: empty batches upset oneDNN kernels.
        return tf.cond(tf.size(index) > 0,
                       lambda: self.purifier(sub, seed=seed)["images"],
                       lambda: tf.zeros_like(sub))

    def _defend(self, x, seed):
        x = validate_images(x, self.max_batch)
        if self.bypass:
            cheap = self.reconstruct(x)
            score = detection_scores(x, cheap, self.metric)
            flagged = self._flag(score)
            index = tf.where(flagged)[:, 0]
            purified = tf.tensor_scatter_nd_update(cheap, index[:, None], self._search_subset(x, index, seed))
        else:
            result = self.purifier(x, seed=seed)
            purified = result["images"]
            score = result["errors"] if self.encoder is None else detection_scores(
                x, self.reconstruct(x), self.metric)
            flagged = self._flag(score)
        logits = tf.cast(self.classifier(purified, training=False), tf.float32)
        return {"logits": logits, "label": tf.argmax(logits, axis=-1, output_type=tf.int32),
                "purified": purified, "score": score, "is_adversarial": flagged}

    def call(self, x, training=False, seed=0):
        return self._defend_fn(tf.cast(x, tf.float32), tf.constant(seed, tf.int32))["logits"]

    def defend(self, x, seed=0, batch_size=256):
        """Runs the whole pipeline on numpy images; returns a dict of numpy arrays.

        Args:
            x: float32 images [N, 28, 28, 1] in [0, 1].
            seed: seed of the random restarts (if any).
            batch_size: images per graph call.

        Returns:
            dict: ``logits`` [N, 10], ``label`` [N], ``purified`` [N, 28, 28, 1],
            ``score`` [N], ``is_adversarial`` [N] bool.
        """
        x = check_images(x)
        parts = [self._defend_fn(tf.constant(x[i:i + batch_size]), tf.constant(seed, tf.int32))
                 for i in range(0, len(x), batch_size)]
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

    def predict_logits(self, x):
        """Logits for a batch (used by `tfdefense.evaluation`)."""
        return self.defend(x)["logits"]

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, PARTS))
        config.update({
            "threshold": self.threshold, "metric": self.metric, "bypass": self.bypass,
            "max_batch": self.max_batch,
        })
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, PARTS))
