"""Measuring models: clean accuracy and robustness under named threat models.

Threat models (DESIGN.md vocabulary):

* ``gray``: attacks are crafted on the bare classifier, then fed to the
  defended model (the attacker does not know the defense).
* ``white``: adaptive attacks through the defense (the exact gradient of a
  differentiable defense, BPDA + EOT for a latent search, see
  `tfdefense.threats`); with attackable detectors, also a detector-aware
  PGD (``pgd_detector``) that keeps every score under its threshold (a
  non-differentiable detector through its differentiable stand-in). When
  the detector bypasses the purifier for inputs it does not flag, that PGD
  aims its classification loss at the bypass path, the one a quiet input
  takes (FM-Defense: the classifier itself; AE-GAN+rs: G(F(x))).
* ``black``: a substitute trained on the 150 ``holdout`` images labelled by
  the defended model (Jacobian augmentation), attacked, transferred.

Every result records n, the attack settings, the threat model and the seed.
The headline number is the plain accuracy of the final label; rejection by
the detector is reported in its own columns.

Example:
    >>> import tfdefense
    >>> from tfdefense import datasets, evaluation
    >>> x, y = datasets.load("mnist", "eval")                                  # doctest: +SKIP
    >>> report = evaluation.evaluate(tfdefense.load("aegan_mnist"), x[:100], y[:100],
    ...                              attacks=("fgsm",), eps=0.3)               # doctest: +SKIP
    >>> print(report.to_markdown())                                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import tensorflow as tf

import keras

from tfdefense.evaluation import attacks as attacks_lib
from tfdefense.evaluation import blackbox, threats as threats_lib
from tfdefense.evaluation.shards import BLOCK_SIZE, block_seed, block_slices
from tfdefense.defense.defended import as_defended
from tfdefense.utils import batching, progress
from tfdefense.purification import roc_curve

THREATS = ("gray", "white", "black")
# The attack every white-box evaluation adds for a defense with an attackable detector.
DETECTOR_AWARE = "pgd_detector"
BLACK_BOX_DEFAULTS = {"arch": "b", "rounds": 6, "epochs": 10, "lmbda": 0.1}


def predict_logits(model, x, batch_size=500, desc="predict"):
    """Logits of a keras ``model`` on numpy ``x`` in batches, with a progress bar."""
    return batching.concat_map(lambda b: model(b, training=False), x, batch_size, desc)


def accuracy(model, x, y, batch_size=500, desc="accuracy"):
    """Fraction of ``x`` whose argmax logit equals ``y``."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
    logits = predict_logits(model, x, batch_size=batch_size, desc=desc)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))


@dataclasses.dataclass
class AttackResult:
    attack: str
    threat: str
    params: dict
    n: int
    accuracy_undefended: float
    accuracy_defended: float
    rejection_rate: float
    accuracy_or_rejected: float
    mean_linf: float
    mean_l2: float
    wall_time_s: float
    # Adversarial examples that no detector flagged and that the final label gets wrong.
    fooled_undetected: float = None
    # Mean distortion of those successful examples only (None when there are none).
    mean_linf_fooled: float = None
    mean_l2_fooled: float = None
    # Inputs any detector flagged (purified or rejected): differs from rejection_rate where flagged
    # inputs are purified rather than rejected (AE-GAN+rs, FM-Defense's salvageable zone).
    detection_rate: float = None
    accuracy_or_detected: float = None
    # A random defense answered k times (seeds 0..k-1): the fraction right every time. An attacker who
    # may query k times breaks an input if any answer is wrong (auto-attack #105), so this is the
    # figure a randomized defense is judged by beside the one-shot accuracy.
    queries_k: int = None
    accuracy_k_queries: float = None


@dataclasses.dataclass
class Report:
    model: str
    dataset: str
    split: str
    n: int
    seed: int
    clean: dict
    results: list
    settings: dict = dataclasses.field(default_factory=dict)
    substitute: dict = dataclasses.field(default_factory=dict)
    sanity: dict = dataclasses.field(default_factory=dict)
    detector: dict = dataclasses.field(default_factory=dict)
    eps_sweep: dict = dataclasses.field(default_factory=dict)
    figures: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.examples = {}  # a few adversarial images per result, for figures (not serialised)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self):
        c = self.clean
        lines = [f"# {self.model}: robustness report", "",
                 f"{self.dataset} `{self.split}` split, n={self.n}, seed={self.seed}. Settings: "
                 f"`{json.dumps(self.settings)}`.", "",
                 f"Clean: undefended {c['accuracy_undefended']:.3f}, defended {c['accuracy_defended']:.3f}, "
                 f"flagged {_fmt(c.get('detection_rate', c['rejection_rate']))}, rejected {c['rejection_rate']:.3f}"
                 + (f"; right under all of {c['queries_k']} seeds {c['accuracy_k_queries']:.3f}." if c.get("queries_k")
                    else "."),
                 "", "| threat | attack | params | no defense | defended | flagged | rejected | defended or rejected "
                 "| fooled and unflagged | mean Linf | mean L2 | L2 of the fooled | time (s) |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.results:
            r = r if isinstance(r, dict) else dataclasses.asdict(r)
            params = {k: v for k, v in r["params"].items()}
            lines.append(f"| {r['threat']} | {r['attack']} (n={r['n']}) | `{json.dumps(params)}` "
                         f"| {r['accuracy_undefended']:.3f} | {r['accuracy_defended']:.3f} "
                         f"| {_fmt(r.get('detection_rate'))} | {r['rejection_rate']:.3f} "
                         f"| {r['accuracy_or_rejected']:.3f} | {_fmt(r.get('fooled_undetected'))} "
                         f"| {r['mean_linf']:.3f} | {r['mean_l2']:.3f} | {_fmt(r.get('mean_l2_fooled'))} "
                         f"| {r['wall_time_s']:.0f} |"
                         + (f" {r['queries_k']} queries: {r['accuracy_k_queries']:.3f} |" if r.get("queries_k") else ""))
        if self.substitute:
            lines += ["", f"Black-box substitute: `{json.dumps(self.substitute)}`."]
        if self.detector:
            lines += ["", f"Detector (FGSM gray-box, AUC by eps): `{json.dumps(self.detector)}`."]
        if self.eps_sweep:
            lines += ["", f"Accuracy vs eps: `{json.dumps(self.eps_sweep)}`."]
        if self.sanity:
            lines += ["", "## Sanity checks (Carlini et al. 2019)", ""]
            verdicts = {True: "PASS", False: "FAIL", None: "N/A"}
            lines += [f"- {verdicts[c['passed']]} {k}: {c['detail']}" for k, c in self.sanity.items()]
        if self.figures:
            lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in self.figures]
        return "\n".join(lines) + "\n"

    @classmethod
    def read(cls, path):
        """A report back from its ``report.json``."""
        with open(path) as f:
            data = json.load(f)
        data["results"] = [AttackResult(**r) for r in data["results"]]
        return cls(**data)

    def write(self, output_dir):
        """Writes report.json and report.md into ``output_dir``."""
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "report.json"), "w") as f:
            f.write(self.to_json() + "\n")
        with open(os.path.join(output_dir, "report.md"), "w") as f:
            f.write(self.to_markdown())
        return output_dir


def _fmt(value):
    return "-" if value is None else f"{value:.3f}"


def defended_outputs(model, x, desc=None):
    """Final labels, detector flags and reject decisions of a `DefendedClassifier`
    (``desc`` labels a progress bar over its batches)."""
    out = model.defend(x, desc=desc)
    return out["label"], np.asarray(out["is_adversarial"], bool), np.asarray(out["rejected"], bool)


def attack_params(attack, eps, overrides=None):
    """The settings an attack runs with (its record's defaults < ``overrides[attack]``), eps where it applies."""
    return attacks_lib.get(attack).params(eps, (overrides or {}).get(attack))


def run_attack(attack, logits_fn, x, y, params, seed, model=None):
    """Runs one attack; ``params`` may hold ``n`` (handled by the caller)."""
    record = attacks_lib.get(attack)
    kwargs = {k: v for k, v in params.items() if k != "n"}
    if record.seeded:
        kwargs["seed"] = seed
    if record.access == "detector":
        # The penalty is the summed excess of every differentiable detector over its threshold.
        return record.fn(logits_fn, model.detector_excess, 0.0, x, y, **kwargs)
    return record.fn(logits_fn, x, y, **kwargs)


K_QUERIES = 10


def is_random(model):
    """Whether a defense's answer depends on its seed (a random purifier or detector)."""
    return bool((model.purifier is not None and model.purifier.random) or any(d.random for d in model.detectors))


def k_query_right(model, x, y, k=K_QUERIES, first=None, block=0):
    """Per image: whether a random defense labels it right under each of seeds 0..k-1 (those of
    ``block``, see `shards.block_seed`); ``first``: the labels of the first seed, already computed."""
    right = (first if first is not None else model.defend(x, seed=block_seed(0, block))["label"]) == y
    for seed in range(1, k):
        right &= model.defend(x, seed=block_seed(seed, block))["label"] == y
    return right


def k_query_accuracy(model, x, y, k=K_QUERIES, first=None):
    """The fraction of ``x`` a random defense labels right under each of seeds 0..k-1 (``first``: the
    labels of seed 0, already computed)."""
    return float(np.mean(k_query_right(model, x, y, k, first)))


def image_outcomes(model, classifier, x, x_adv, y, k=None, block=0, desc=None):
    """What happened to each image of ``x_adv`` (adversarial versions of ``x``), as arrays: ``label``, ``right``,
    ``flagged``, ``rejected``, ``right_undefended``, ``linf``, ``l2``, and with ``k`` ``right_k`` (right
    under k queries). The defense draws its noise with the seeds of ``block``."""
    out = model.defend(x_adv, seed=block_seed(0, block), desc=desc)
    label = out["label"]
    delta = (x_adv - x).reshape(len(x), -1)
    outcomes = {"label": label, "right": label == y, "flagged": np.asarray(out["is_adversarial"], bool),
                "rejected": np.asarray(out["rejected"], bool),
                "right_undefended": np.argmax(predict_logits(classifier, x_adv, desc="undefended"), -1) == y,
                "linf": np.abs(delta).max(1), "l2": np.linalg.norm(delta, axis=1)}
    if k:
        outcomes["right_k"] = k_query_right(model, x_adv, y, k, label, block)
    return outcomes


def summarize_clean(o, k=None):
    """The report's clean section from `image_outcomes` of the clean images (``k``: the queries of ``right_k``)."""
    clean = {"accuracy_undefended": float(np.mean(o["right_undefended"])), "accuracy_defended": float(np.mean(o["right"])),
             "rejection_rate": float(np.mean(o["rejected"])), "detection_rate": float(np.mean(o["flagged"]))}
    if k:
        clean.update(queries_k=int(k), accuracy_k_queries=float(np.mean(o["right_k"])))
    return clean


def summarize(attack, threat, params, o, seconds, k=None):
    """An `AttackResult` from per-image `image_outcomes` (one process's, or the shards' concatenated);
    ``k``: the queries behind ``right_k``, if any."""
    right, flagged, rejected, linf, l2 = o["right"], o["flagged"], o["rejected"], o["linf"], o["l2"]
    fooled = ~right & ~flagged
    return AttackResult(
        attack=attack, threat=threat, params=params, n=int(len(right)),
        accuracy_undefended=float(np.mean(o["right_undefended"])),
        accuracy_defended=float(np.mean(right)), rejection_rate=float(np.mean(rejected)),
        accuracy_or_rejected=float(np.mean(right | rejected)),
        detection_rate=float(np.mean(flagged)), accuracy_or_detected=float(np.mean(right | flagged)),
        mean_linf=float(linf.mean()), mean_l2=float(l2.mean()), wall_time_s=round(seconds, 1),
        fooled_undetected=float(np.mean(fooled)),
        mean_linf_fooled=float(linf[fooled].mean()) if fooled.any() else None,
        mean_l2_fooled=float(l2[fooled].mean()) if fooled.any() else None,
        queries_k=k, accuracy_k_queries=float(np.mean(o["right_k"])) if k else None)


def has_attackable_detector(model):
    """Whether a detector-aware attack applies: some detector is differentiable and has a threshold."""
    return bool(model.attackable_detectors())


def train_substitute(model, holdout, seed=0, black_box=None):
    """The black-box substitute of a defense: `blackbox.train_substitute` on ``holdout`` with the defense as
    its oracle and ``BLACK_BOX_DEFAULTS`` < ``black_box``."""
    return blackbox.train_substitute(blackbox.oracle_from(model), holdout, seed=seed, num_classes=model.num_classes,
                                     **{**BLACK_BOX_DEFAULTS, **(black_box or {})})


def attack_fn(model, threat, attack, substitute=None, white_box=None, block=0):
    """The logits function an attack differentiates under ``threat``.

    ``white_box`` holds `threats.white_box_fn` settings (``bpda``, ``eot``, ``seed``); a random
    defense draws its noise with the seeds of ``block`` (`shards.block_seed`).
    """
    if threat == "gray":
        return threats_lib.gray_box_fn(model)
    if threat == "black":
        return lambda xb: substitute.model(xb, training=False)
    access = attacks_lib.get(attack).access
    if access == "detector" and any(d.bypass for d in model.attackable_detectors()):
        # Inputs the detector stays quiet about skip the purifier (AE-GAN+rs: G(F(x)); FM-Defense: x itself),
        # so the attack that quiets the detector aims its classification loss at that path, exactly.
        return lambda xb: model.classifier(model.purifier.surrogate(tf.cast(xb, tf.float32)), training=False)
    if access == "queries":  # gradient-free: query the real defense
        # SPSA probes x +/- delta without clipping; valid images are in [0, 1].
        return lambda xb: model.defend(np.clip(np.asarray(xb), 0.0, 1.0), seed=block_seed(0, block))["logits"]
    white_box = dict(white_box or {})
    white_box["seed"] = block_seed(white_box.get("seed", 0), block)
    return threats_lib.white_box_fn(model, **white_box)


def evaluate(model, x, y, *, attacks=("fgsm", "pgd", "cw"), threats=("gray",), eps=0.3, seed=0,
             params=None, name=None, dataset="", split="", holdout=None, black_box=None, white_box=None,
             detector_aware=True, on_result=None, k_queries=K_QUERIES, blocks=None, block_size=BLOCK_SIZE,
             substitute=None):
    """Measures clean and adversarial accuracy of a (defended) model.

    Args:
        model: a `DefendedClassifier` (or any logits model: then "defended"
            is the model itself).
        x, y: numpy images and labels to attack.
        attacks: names from `tfdefense.evaluation.attacks.ATTACKS`.
        threats: names from ``THREATS``.
        eps: Linf budget for the Linf attacks.
        seed: seed for random starts; results are deterministic for a seed.
        params: per-attack overrides, e.g. ``{"pgd": {"nb_iter": 100}, "cw": {"n": 200}}``.
        holdout: images for the black-box substitute's seed set (required for "black").
        black_box: substitute settings overriding ``BLACK_BOX_DEFAULTS``.
        white_box: BPDA/EOT settings for "white", e.g. ``{"eot": 1}``
            (defaults: see `threats.white_box_fn`).
        detector_aware: under "white", also run ``pgd_detector`` when the
            model has a detector.
        on_result: called with the `Report` after each attack's result is
            added (the harness writes the report so far: a killed run keeps it).
        k_queries: for a random defense, also the accuracy when every input is
            answered under seeds 0..k-1 and must be right each time (1: skip).
        blocks: evaluate only these blocks of ``block_size`` images (a shard,
            `tfdefense.evaluation.shards`; default: all). Block b draws its
            randomness from `shards.block_seed` of the run's seeds and b.
        substitute: a black-box `blackbox.Substitute` already trained (shared
            by the shards of one run) instead of training one here.

    Returns:
        A `Report`; ``report.outcomes`` holds each image's outcome per result.
    """
    for threat in threats:
        if threat not in THREATS:
            raise ValueError(f"Unknown threat model {threat!r}; choose from {THREATS}.")
    for attack in attacks:
        attack_params(attack, eps, params)  # fail early on unknown names
    if "black" in threats and holdout is None:
        raise ValueError("the black-box threat needs `holdout` images for the substitute.")
    keras.utils.set_random_seed(seed)
    y = np.asarray(y)
    model = as_defended(model, x.shape[1:])
    classifier = model.classifier
    k = k_queries if k_queries and k_queries > 1 and is_random(model) else None
    all_blocks = range(-(-len(x) // block_size)) if blocks is None else blocks

    def outcomes_over(n, fn):
        """``fn(block, slice)`` -> (adversarial images, seconds) on each of our blocks within the first n
        images: their outcomes concatenated, with each image's index, and the summed seconds."""
        parts, seconds = [], 0.0
        for b, sl in block_slices(all_blocks, n, block_size):
            x_adv, spent = fn(b, sl)
            start = time.time()
            o = image_outcomes(model, classifier, x[sl], x_adv, y[sl], k, b)
            o["index"] = np.arange(sl.start, sl.stop)
            parts.append(o)
            seconds += spent + time.time() - start
        if not parts:
            empty = {f: np.zeros(0, bool) for f in ("right", "flagged", "rejected", "right_undefended")}
            return {**empty, "label": np.zeros(0, int), "linf": np.zeros(0), "l2": np.zeros(0),
                    "index": np.zeros(0, int)}, 0.0
        return {f: np.concatenate([p[f] for p in parts]) for f in parts[0]}, seconds

    clean_outcomes, _ = outcomes_over(len(x), lambda b, sl: (x[sl], 0.0))
    clean = summarize_clean(clean_outcomes, k) if len(clean_outcomes["index"]) else {}
    report = Report(model=name or model.name, dataset=dataset, split=split, n=int(len(clean_outcomes["index"])),
                    seed=seed, clean=clean, results=[],
                    settings={"eps": eps, "threats": list(threats), "attacks": list(attacks),
                              **({"random": True} if is_random(model) else {}),
                              **({"white_box": dict(white_box)} if white_box else {}),
                              **({"block_size": block_size} if block_size != BLOCK_SIZE else {})})
    if "white" in threats:
        report.settings["white_box_gradient"] = threats_lib.gradient_kind(model, (white_box or {}).get("bpda"))
        report.settings["white_box_eot"] = threats_lib.eot_count(model, (white_box or {}).get("eot"))
    report.outcomes = {"clean": clean_outcomes}
    has_detector = has_attackable_detector(model)
    for threat in threats:
        sub = None
        if threat == "black":
            settings = {**BLACK_BOX_DEFAULTS, **(black_box or {})}
            sub = substitute or train_substitute(model, holdout, seed, black_box)
            ours = clean_outcomes["index"]
            agrees = np.argmax(predict_logits(sub.model, x[ours]), 1) == clean_outcomes["label"]
            report.outcomes["substitute"] = {"index": clean_outcomes["index"], "agrees": agrees}
            report.substitute = {**settings, "training_set_size": sub.training_set_size,
                                 "oracle_queries": sub.oracle_queries,
                                 "agreement_with_defended_model": round(float(np.mean(agrees)), 4) if len(agrees)
                                 else None}
        names = list(attacks) + ([DETECTOR_AWARE] if threat == "white" and detector_aware and has_detector
                                 and DETECTOR_AWARE not in attacks else [])
        for attack in names:
            p = attack_params(attack, eps, params)
            n = min(len(x), p.get("n") or len(x))

            def adversarial(b, sl):
                start = time.time()
                logits_fn = attack_fn(model, threat, attack, sub, white_box, block=b)
                x_adv = run_attack(attack, logits_fn, x[sl], y[sl], p, block_seed(seed, b), model)
                if f"{threat}/{attack}" not in report.examples:
                    report.examples[f"{threat}/{attack}"] = x_adv[:8]
                return x_adv, time.time() - start

            o, seconds = outcomes_over(n, adversarial)
            report.outcomes[f"{threat}/{attack}"] = o
            if len(o["index"]):
                report.results.append(summarize(attack, threat, p, o, seconds, k))
            if on_result is not None:
                on_result(report)
    return report


def eps_sweep(model, x, y, eps_values, *, attack="fgsm", threat="gray", seed=0):
    """Defended and undefended accuracy for each eps; the worst case is the min.

    A model with detectors also gets "defended_or_rejected": an input counts if
    its label is right or it was rejected (the figure of merit of papers that
    count a rejection as handled), beside plain accuracy, never instead of it.
    """
    model = as_defended(model, x.shape[1:])
    classifier = model.classifier
    defended, undefended, handled = [], [], []
    for eps in progress.bar(list(eps_values), desc=f"{attack} eps sweep"):
        p = attack_params(attack, eps)
        x_adv = run_attack(attack, attack_fn(model, threat, attack), x, y, p, seed, model)
        labels, _, rejected = defended_outputs(model, x_adv)
        defended.append(float(np.mean(labels == y)))
        handled.append(float(np.mean((labels == y) | np.asarray(rejected, bool))))
        undefended.append(accuracy(classifier, x_adv, y, desc="undefended"))
    result = {"attack": attack, "threat": threat, "n": int(len(x)), "eps": [float(e) for e in eps_values],
              "defended": defended, "undefended": undefended, "worst_defended": min(defended)}
    if model.detectors:
        result.update(defended_or_rejected=handled, worst_defended_or_rejected=min(handled))
    return result


def detector_auc(model, x, y, detector, eps_values=(0.05, 0.1, 0.2, 0.3), seed=0):
    """One detector's scores on clean vs gray-box FGSM images, and the ROC AUC per eps.

    Args:
        model: a `DefendedClassifier`.
        detector: the name of one of its detectors.

    Returns:
        ``(clean scores, {eps: adversarial scores}, {str(eps): AUC})``.
    """
    def scores(images):
        return batching.concat_map(lambda b: model.detector_scores(b, seed)[detector], images, 256)

    clean = scores(x)
    adv = {eps: scores(attacks_lib.fgsm(threats_lib.gray_box_fn(model), x, y, eps=eps)) for eps in eps_values}
    aucs = {str(eps): round(roc_curve(clean, s)[3], 4) for eps, s in adv.items()}
    return clean, adv, aucs


def detector_report(model, x, y, seed=0):
    """The report's detector section: for every detector with a threshold whose score needs no
    purification (one that reads the search's error is each attack's "flagged" column), the ROC AUC of
    clean against gray-box FGSM images by eps (`detector_auc`) and its clean false-positive rate.

    Returns:
        ``(section, {detector name: (clean scores, {eps: adversarial scores})})``; ``({}, {})`` when no
        detector applies.
    """
    model = as_defended(model, x.shape[1:])
    detectors = [d for d in model.detectors if d.threshold is not None and not d.needs_purification]
    if not detectors:
        return {}, {}
    section = {"n": int(len(x)), "thresholds": model.thresholds, "auc_by_fgsm_eps": {},
               "false_positive_rate_clean": {}}
    scores = {}
    for d in detectors:
        clean, adversarial, aucs = detector_auc(model, x, y, d.name, seed=seed)
        section["auc_by_fgsm_eps"][d.name] = aucs
        section["false_positive_rate_clean"][d.name] = float(np.mean(np.asarray(d.flag(clean))))
        scores[d.name] = (clean, adversarial)
    return section, scores
