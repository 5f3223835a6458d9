"""Measuring models: clean accuracy and robustness under named threat models.

Threat models (DESIGN.md vocabulary):

* ``gray``: attacks are crafted on the bare classifier, then fed to the
  defended model (the attacker does not know the defense).

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
import time

import numpy as np

from tfdefense import attacks as attacks_lib
from tfdefense import progress

THREATS = ("gray",)
DEFAULT_PARAMS = {
    "fgsm": {},
    "pgd": {"eps_iter": 0.01, "nb_iter": 40, "rand_init": True},
    "cw": {"binary_search_steps": 5, "max_iterations": 100, "learning_rate": 0.1, "initial_const": 10.0,
           "confidence": 0.0},
}
L2_ATTACKS = ("cw",)  # no eps: they minimise the L2 perturbation


def predict_logits(model, x, batch_size=500, desc="predict"):
    """Logits of ``model`` on numpy ``x`` in batches, with a progress bar."""
    fn = getattr(model, "predict_logits", None) or (lambda b: model(b, training=False))
    out = []
    for start in progress.bar(range(0, len(x), batch_size), desc=desc):
        out.append(np.asarray(fn(x[start:start + batch_size])))
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


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
                 f"flagged {c['rejection_rate']:.3f}.", "",
                 "| threat | attack | params | no defense | defended | rejected | defended or rejected "
                 "| mean Linf | mean L2 | time (s) |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.results:
            lines.append(f"| {r.threat} | {r.attack} | `{json.dumps(r.params)}` | {r.accuracy_undefended:.3f} "
                         f"| {r.accuracy_defended:.3f} | {r.rejection_rate:.3f} | {r.accuracy_or_rejected:.3f} "
                         f"| {r.mean_linf:.3f} | {r.mean_l2:.3f} | {r.wall_time_s:.0f} |")
        return "\n".join(lines) + "\n"


def _defended_outputs(model, x):
    if hasattr(model, "defend"):
        out = model.defend(x)
        return out["label"], out["is_adversarial"]
    return np.argmax(predict_logits(model, x), axis=-1), np.zeros(len(x), bool)


def attack_params(attack, eps, overrides=None):
    """The settings an attack runs with (defaults < overrides), eps included where it applies."""
    if attack not in DEFAULT_PARAMS:
        raise ValueError(f"Unknown attack {attack!r}; choose from {sorted(DEFAULT_PARAMS)}.")
    params = {**DEFAULT_PARAMS[attack], **(overrides or {}).get(attack, {})}
    if attack not in L2_ATTACKS:
        params["eps"] = eps
    return params


def evaluate(model, x, y, *, attacks=("fgsm", "pgd", "cw"), threats=("gray",), eps=0.3, seed=0,
             params=None, name=None, dataset="", split=""):
    """Measures clean and adversarial accuracy of a (defended) model.

    Args:
        model: a `DefendedClassifier` (or any logits model: then "defended"
            is the model itself).
        x, y: numpy images and labels.
        attacks: names from ``DEFAULT_PARAMS``.
        threats: names from ``THREATS``.
        eps: Linf budget for FGSM/PGD.
        seed: seed for random starts; results are deterministic for a seed.
        params: per-attack setting overrides, e.g. ``{"pgd": {"nb_iter": 100}}``.

    Returns:
        A `Report`.
    """
    import keras

    for threat in threats:
        if threat not in THREATS:
            raise ValueError(f"Unknown threat model {threat!r}; choose from {THREATS}.")
    keras.utils.set_random_seed(seed)
    y = np.asarray(y)
    classifier = getattr(model, "classifier", model)
    label, flagged = _defended_outputs(model, x)
    clean = {"accuracy_undefended": accuracy(classifier, x, y, desc="clean undefended"),
             "accuracy_defended": float(np.mean(label == y)), "rejection_rate": float(np.mean(flagged))}
    results = []
    for threat in threats:
        for attack in attacks:
            p = attack_params(attack, eps, params)
            start = time.time()
            fn = attacks_lib.ATTACKS[attack]
            kwargs = dict(p, seed=seed) if attack == "pgd" else p
            x_adv = fn(classifier, x, y, **kwargs)  # gray-box: crafted on the bare classifier
            label, flagged = _defended_outputs(model, x_adv)
            delta = (x_adv - x).reshape(len(x), -1)
            correct = label == y
            results.append(AttackResult(
                attack=attack, threat=threat, params=p, n=int(len(x)),
                accuracy_undefended=accuracy(classifier, x_adv, y, desc=f"{attack} undefended"),
                accuracy_defended=float(np.mean(correct)), rejection_rate=float(np.mean(flagged)),
                accuracy_or_rejected=float(np.mean(correct | flagged)),
                mean_linf=float(np.abs(delta).max(1).mean()), mean_l2=float(np.linalg.norm(delta, axis=1).mean()),
                wall_time_s=round(time.time() - start, 1)))
    return Report(model=name or getattr(model, "name", "model"), dataset=dataset, split=split, n=int(len(x)),
                  seed=seed, clean=clean, results=results, settings={"eps": eps, "threats": list(threats)})
