"""Attacks as plain functions on logits functions, one attack per module, and one record per name.

Every attack has the form ``fn(model_fn, x, y, *, ..., clip_min, clip_max)``
where ``model_fn`` maps a float32 batch to logits; it returns numpy
adversarial images. Settings are checked up front with ``ValueError``.

The evaluator knows an attack only by its `Attack` record in ``ATTACKS``:
its function, its default settings, whether it takes the Linf budget and a
seed, what it needs of the defense (``access``), and how many images it runs
on by default.

Example:
    >>> from tfdefense.evaluation import attacks
    >>> x_adv = attacks.fgsm(classifier, x, y, eps=0.3)                     # doctest: +SKIP
    >>> x_adv = attacks.ATTACKS["pgd"](classifier, x, y, eps=0.3, seed=0)   # doctest: +SKIP
    >>> attacks.ATTACKS["cw"].uses_eps
    False

Reference:
    Papernot et al., Technical report on the CleverHans library (2018).
"""

import dataclasses
from typing import Callable, Optional

from tfdefense.evaluation import art_attacks
from tfdefense.evaluation.attacks.carlini_wagner import cw_l2, cw_linf
from tfdefense.evaluation.attacks.corruptions import gaussian_noise, half_mask
from tfdefense.evaluation.attacks.deepfool import deepfool
from tfdefense.evaluation.attacks.fgsm import fgsm
from tfdefense.evaluation.attacks.mim import mim
from tfdefense.evaluation.attacks.pgd import bim, pgd
from tfdefense.evaluation.attacks.pgd_detector import pgd_detector_aware
from tfdefense.evaluation.attacks.spsa import spsa

# What an attack needs of the defense it attacks under a threat model.
ACCESS = {
    "gradient": "differentiates the threat model's logits function",
    "forward": "only evaluates the threat model's logits function (gradient-free)",
    "queries": "queries the deployed defense's answers (gradient-free; white-box: the real pipeline)",
    "detector": "differentiates the logits and the detectors' excess over their thresholds",
    "none": "ignores the model: a corruption, the same images under every threat model",
}


@dataclasses.dataclass(frozen=True)
class Attack:
    """One attack as the evaluator runs it.

    Attributes:
        fn: the attack function.
        defaults: its settings unless overridden.
        uses_eps: it takes the Linf budget ``eps`` (else it looks for a small
            perturbation in its own norm, or is not an attack).
        seeded: it takes the evaluation's ``seed``.
        access: what it needs of the defense (a key of ``ACCESS``).
        max_n: the images it runs on by default (None: all); the report states it.
    """

    fn: Callable
    defaults: dict = dataclasses.field(default_factory=dict)
    uses_eps: bool = True
    seeded: bool = False
    access: str = "gradient"
    max_n: Optional[int] = None

    def __post_init__(self):
        if self.access not in ACCESS:
            raise ValueError(f"access must be one of {sorted(ACCESS)}, got {self.access!r}.")

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def params(self, eps, overrides=None):
        """The settings one run takes: defaults < ``overrides``, then ``n`` (if capped) and ``eps`` (if used)."""
        params = {**self.defaults, **({"n": self.max_n} if self.max_n else {}), **(overrides or {})}
        if self.uses_eps:
            params["eps"] = eps
        return params


def _deepfool_linf(*args, **kwargs):
    return deepfool(*args, norm="linf", **kwargs)


ATTACKS = {
    "fgsm": Attack(fgsm),
    "bim": Attack(bim, {"eps_iter": 0.01, "nb_iter": 40}),
    "pgd": Attack(pgd, {"eps_iter": 0.01, "nb_iter": 40, "rand_init": True}, seeded=True),
    # Madry's MNIST challenge protocol: 100 steps, the worst of 10 random starts.
    "pgd_restarts": Attack(pgd, {"eps_iter": 0.01, "nb_iter": 100, "rand_init": True, "restarts": 10}, seeded=True),
    "mim": Attack(mim, {"eps_iter": 0.03, "nb_iter": 20, "decay_factor": 1.0}),
    "cw": Attack(cw_l2, {"binary_search_steps": 5, "max_iterations": 100, "learning_rate": 0.1,
                         "initial_const": 10.0, "confidence": 0.0}, uses_eps=False),
    "deepfool": Attack(deepfool, {"overshoot": 0.02, "max_iter": 50}, uses_eps=False),
    "deepfool_linf": Attack(_deepfool_linf, {"overshoot": 0.02, "max_iter": 50}, uses_eps=False),
    "spsa": Attack(spsa, {"nb_iter": 20, "spsa_samples": 64, "learning_rate": 0.01, "delta": 0.01}, seeded=True,
                   access="queries", max_n=50),
    "pgd_detector": Attack(pgd_detector_aware, {"eps_iter": 0.01, "nb_iter": 40, "penalty": 10.0}, seeded=True,
                           access="detector"),
    # Through ART (`tfdefense.evaluation.art_attacks`), and CW-Linf: slower, so on fewer images by default.
    "autoattack": Attack(art_attacks.autoattack, {"eps_step": 0.1, "max_iter": 100, "restarts": 1,
                                                  "square_queries": 1000}, seeded=True, max_n=100),
    "square": Attack(art_attacks.square, {"max_iter": 1000, "p_init": 0.8}, seeded=True, access="forward",
                     max_n=100),
    "jsma": Attack(art_attacks.jsma, {"theta": 1.0, "gamma": 0.1}, uses_eps=False, seeded=True, max_n=100),
    "cw_linf": Attack(cw_linf, {"max_iter": 50, "rounds": 20, "learning_rate": 0.01, "confidence": 0.0},
                      uses_eps=False, max_n=200),
    # Corruptions and benign noise, not attacks.
    "half_mask": Attack(half_mask, {"side": "bottom", "value": 0.0}, uses_eps=False, access="none"),
    "gaussian_noise": Attack(gaussian_noise, {"variance": 0.05}, uses_eps=False, seeded=True, access="none"),
}


def get(name):
    """The `Attack` record of ``name``; an unknown name raises ValueError listing the known ones."""
    if name not in ATTACKS:
        raise ValueError(f"Unknown attack {name!r}; choose from {sorted(ATTACKS)}.")
    return ATTACKS[name]


__all__ = ["ACCESS", "ATTACKS", "Attack", "bim", "cw_l2", "cw_linf", "deepfool", "fgsm", "gaussian_noise", "get",
           "half_mask", "mim", "pgd", "pgd_detector_aware", "spsa"]
