"""`MorphResistanceDetector`: FM-Defense's detector (Wang et al. 2020 Section III.C, Eq. 5).

For an input x with code z = E(x) (the combo-VAE's posterior mean) and
label C(x), each selected code i is moved ``morphs`` times within its normal
value range (measured on clean validation images), the morphed codes are
decoded and classified, and the fraction of morphs that keep C(x) is the
code's resistance r_i. Clean inputs resist small, natural changes of their
features; adversarial ones, whose label hangs on a perturbation the
decoder does not reproduce, do not.

Decisions (Eq. 5 and Figure 3): the score is the distance
Dis(r, theta_r) = sum_i max(theta_r_i - r_i, 0). An input with distance 0
is trusted and classified as it is; one with a distance in (0, theta_d] is
suspicious but salvageable and is purified; one beyond theta_d (the
detector's ``threshold``) is rejected.

The morph search (Section III.C, "natural morph generation"): round t
(1..``search_steps``) draws ``morphs`` offsets uniformly in
[-t dr, t dr], dr = ``morph_radius`` x the code's range width, and the first
``morphs`` candidates inside the normal range (in draw order) are the
morphs; a code whose candidates never land inside (an input far off the
manifold) takes them clipped onto the range. All morphs of a batch are one
batched computation, decoded and classified in as few chunks of at most
``chunk`` rows as fit.

Example:
    >>> detector = MorphResistanceDetector(encoder, decoder, low, high, 0.9, threshold=1.0)  # doctest: +SKIP
    >>> defended = DefendedClassifier(classifier, purifier, [detector])                     # doctest: +SKIP
"""

import keras
import numpy as np
import tensorflow as tf

from tfdefense.defense import cost
from tfdefense.defense.contract import DetectorLayer
from tfdefense.defense.serialization import deserialize_parts, serialize_parts

_SEED_SALT = 20200912  # second half of the stateless seed pair


def resistance_thresholds_at(resistances, rho=0.999):
    """Per-code thresholds theta_r flagging at most a fraction 1 - rho of clean inputs each.

    With r sorted ascending and k = floor((1 - rho) n), theta_i = r_(k): fewer
    than k + 1 clean inputs lie strictly below it (ties only lower the count).

    Example:
        >>> resistance_thresholds_at(np.array([[1.0], [0.5], [1.0], [0.9]]), rho=0.75)
        [0.9]
    """
    resistances = np.asarray(resistances, np.float64)
    if resistances.ndim != 2 or len(resistances) == 0:
        raise ValueError(f"resistances must be [inputs, codes], got shape {resistances.shape}.")
    k = int(np.floor((1.0 - rho) * len(resistances)))
    return [float(v) for v in np.sort(resistances, axis=0)[k]]


def distances(resistances, thresholds):
    """Eq. 5: sum over codes of max(theta_i - r_i, 0), in numpy ([inputs, codes] -> [inputs])."""
    return np.sum(np.maximum(np.asarray(thresholds)[None, :] - np.asarray(resistances), 0.0), axis=1)


@keras.saving.register_keras_serializable(package="tfdefense")
class MorphResistanceDetector(DetectorLayer):
    """Flags inputs whose label does not resist morphs of their disentangled codes.

    Contract: random (the morphs are drawn from the request's seed), not
    differentiable (a count of labels); a detector-aware attack gets
    ``excess``, a differentiable stand-in (the classifier's probability of
    C(x) averaged over ``attack_morphs`` fresh morphs per code, in place of
    the label count), so the detector is attacked by BPDA with EOT.
    It needs the protected classifier, which `DefendedClassifier` binds.

    Args:
        encoder, decoder: the combo-VAE (codes are the encoder's means).
        low, high: normal value range of every code (lists, one per code).
        resistance_thresholds: theta_r, one number for every selected code or a list.
        threshold: theta_d; above it an input is rejected (None: the detector is off).
        morphs: N, morphs per code and input.
        codes: indices of the codes to manipulate (None: all).
        morph_radius, search_steps: the search's dr (a fraction of the range width) and rounds.
        chunk: morphs decoded and classified per batched call.
        attack_morphs: morphs per code in ``excess``.
    """

    differentiable = False
    random = True

    def __init__(self, encoder, decoder, low, high, resistance_thresholds=0.9, threshold=None, morphs=100,
                 codes=None, morph_radius=0.1, search_steps=10, chunk=4096, attack_morphs=2, bypass=True,
                 rejects=True, **kwargs):
        kwargs.setdefault("name", "morph")
        super().__init__(threshold=threshold, bypass=bypass, rejects=rejects, **kwargs)
        self.encoder, self.decoder = encoder, decoder
        latent = int(encoder.outputs[0].shape[-1])
        self.codes = list(range(latent)) if codes is None else [int(c) for c in codes]
        if not self.codes or min(self.codes) < 0 or max(self.codes) >= latent:
            raise ValueError(f"codes must be indices in [0, {latent}), got {codes!r}.")
        self.low, self.high = [float(v) for v in low], [float(v) for v in high]
        if len(self.low) != latent or len(self.high) != latent or any(a >= b for a, b in zip(self.low, self.high)):
            raise ValueError(f"low and high must be {latent} values each with low < high.")
        if np.ndim(resistance_thresholds) == 0:
            resistance_thresholds = [float(resistance_thresholds)] * len(self.codes)
        self.resistance_thresholds = [float(v) for v in resistance_thresholds]
        if len(self.resistance_thresholds) != len(self.codes):
            raise ValueError(f"resistance_thresholds needs one value per selected code ({len(self.codes)}), "
                             f"got {len(self.resistance_thresholds)}.")
        for key, value in (("morphs", morphs), ("search_steps", search_steps), ("chunk", chunk),
                           ("attack_morphs", attack_morphs)):
            if int(value) < 1:
                raise ValueError(f"{key} must be >= 1, got {value!r}.")
        if not morph_radius > 0:
            raise ValueError(f"morph_radius must be > 0, got {morph_radius!r}.")
        self.morphs, self.search_steps, self.chunk = int(morphs), int(search_steps), int(chunk)
        self.attack_morphs, self.morph_radius = int(attack_morphs), float(morph_radius)
        self.built = True

    @property
    def attackable(self):
        return True

    # -- morphs ---------------------------------------------------------------------------------
    def morph_codes(self, z, seed, morphs):
        """Morphed code vectors [N, S, morphs, latent] of codes z [N, latent], S = selected codes."""
        z = tf.cast(z, tf.float32)
        sel = tf.constant(self.codes, tf.int32)
        low, high = tf.gather(tf.constant(self.low), sel), tf.gather(tf.constant(self.high), sel)  # [S]
        steps, s = self.search_steps, len(self.codes)
        radius = (self.morph_radius * (high - low))[:, None] * tf.range(1, steps + 1, dtype=tf.float32)[None]
        seeds = tf.stack([tf.cast(seed, tf.int32), tf.constant(_SEED_SALT, tf.int32)])
        offsets = tf.random.stateless_uniform(tf.concat([tf.shape(z)[:1], [s, steps, morphs]], 0), seeds, -1.0, 1.0)
        current = tf.gather(z, sel, axis=1)  # [N, S]
        candidates = tf.reshape(current[:, :, None, None] + offsets * radius[None, :, :, None],
                                tf.concat([tf.shape(z)[:1], [s, steps * morphs]], 0))
        inside = (candidates >= low[None, :, None]) & (candidates <= high[None, :, None])
        order = tf.range(steps * morphs)
        key = tf.where(inside, order, order + steps * morphs)  # draw order, outside candidates last
        first = tf.math.top_k(-key, k=morphs, sorted=True).indices
        values = tf.gather(candidates, first, axis=2, batch_dims=2)
        values = tf.clip_by_value(values, low[None, :, None], high[None, :, None])  # [N, S, morphs]
        mask = tf.one_hot(sel, tf.shape(z)[1])  # [S, latent]
        return (z[:, None, None, :] * (1.0 - mask)[None, :, None, :]
                + values[..., None] * mask[None, :, None, :])

    def _labels(self, images):
        return tf.argmax(self._classifier()(images, training=False), axis=-1, output_type=tf.int32)

    def _classifier(self):
        classify = getattr(self, "_classify", None)
        if classify is None:
            raise ValueError("MorphResistanceDetector asks the protected classifier; use it inside a "
                             "DefendedClassifier.")
        return classify

    def resistance(self, x, seed=0, morphs=None):
        """Resistance of every selected code [N, S]: the fraction of its morphs that keep C(x)."""
        morphs = morphs or self.morphs
        x = tf.cast(x, tf.float32)
        z = self.encoder(x, training=False)[0]
        label = self._labels(x)
        codes = self.morph_codes(z, seed, morphs)
        flat = tf.reshape(codes, [-1, codes.shape[-1]])
        # As few chunks of at most `chunk` rows as fit, evenly sized: padding every call to a full chunk
        # made one image decode 4096 rows for its 250 morphs.
        total = tf.shape(flat)[0]
        n_chunks = (total + self.chunk - 1) // self.chunk
        size = (total + n_chunks - 1) // n_chunks
        chunks = tf.reshape(tf.pad(flat, [[0, n_chunks * size - total], [0, 0]]), [n_chunks, size, codes.shape[-1]])
        labels = tf.map_fn(lambda c: self._labels(self.decoder(c, training=False)), chunks,
                           fn_output_signature=tf.int32, parallel_iterations=1)
        labels = tf.reshape(tf.reshape(labels, [-1])[:total], tf.shape(codes)[:3])
        return tf.reduce_mean(tf.cast(tf.equal(labels, label[:, None, None]), tf.float32), axis=2)

    def flops(self):
        """The encoder and the classifier on the input once, then every morph of every selected code
        decoded and classified."""
        morphs = len(self.codes) * self.morphs
        classify = int(getattr(self, "_classifier_flops", 0))
        return (cost.forward_flops(self.encoder) + classify
                + morphs * (cost.forward_flops(self.decoder) + classify))

    def distance(self, resistances):
        """Eq. 5 on tensors: sum_i max(theta_r_i - r_i, 0)."""
        return tf.reduce_sum(tf.nn.relu(tf.constant(self.resistance_thresholds)[None] - resistances), axis=1)

    def score(self, x, purification=None, seed=0):
        return self.distance(self.resistance(x, seed))

    # -- decisions: flagged (distance > 0) are purified, beyond theta_d (the threshold) rejected ---
    @property
    def flag_level(self):
        return 0.0

    def excess(self, x):
        """Differentiable stand-in of the distance for detector-aware attacks: the resistance with
        each morph's label replaced by the classifier's probability of C(x), over fresh morphs each call."""
        x = tf.cast(x, tf.float32)
        z = self.encoder(x, training=False)[0]
        label = tf.stop_gradient(self._labels(x))
        seed = tf.random.uniform([], 0, 2 ** 31 - 1, tf.int32)  # a new draw every attack step: EOT
        codes = self.morph_codes(z, seed, self.attack_morphs)
        probs = tf.nn.softmax(self._classifier()(self.decoder(tf.reshape(codes, [-1, codes.shape[-1]]),
                                                              training=False), training=False))
        probs = tf.reshape(probs, tf.concat([tf.shape(codes)[:3], [-1]], 0))
        soft = tf.reduce_mean(tf.gather(probs, label, axis=3, batch_dims=1), axis=2)  # [N, S]
        return self.distance(soft)

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, ("encoder", "decoder")))
        config.update({"low": self.low, "high": self.high, "resistance_thresholds": self.resistance_thresholds,
                       "morphs": self.morphs, "codes": self.codes, "morph_radius": self.morph_radius,
                       "search_steps": self.search_steps, "chunk": self.chunk, "attack_morphs": self.attack_morphs})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, ("encoder", "decoder")))
