"""Built-in checks that an evaluation is not fooling itself.

From Carlini et al., On Evaluating Adversarial Robustness (2019): the
undefended classifier must fall under PGD; more PGD iterations must not help
the defense; an unbounded attack must succeed (or be rejected); the gradient
an adaptive attack follows must not be zero; and a gradient-free attack must
not beat the gradient attacks by much (else gradients are masked).
"""

import numpy as np

from tfdefense import evaluation
from tfdefense.defense.defended import as_defended
from tfdefense.evaluation import threats

TOLERANCE = 0.03
# PGD's step follows its iteration count (Madry et al.'s 2.5 * eps / iterations), so that 10 iterations can
# cross the whole ball too: with the default fixed step of 0.01, 10 iterations move at most 0.1 of eps 0.3 and
# "more iterations never help" would compare a crippled attack with a real one.
STEP_FACTOR = 2.5


def _pgd(nb_iter, eps):
    return {"eps": eps, "nb_iter": nb_iter, "eps_iter": round(STEP_FACTOR * eps / nb_iter, 6)}


def _check(passed, detail):
    """``passed`` None: the check does not apply to this defense."""
    return {"passed": None if passed is None else bool(passed), "detail": detail}


def run(model, x, y, *, eps=0.3, n=100, seed=0, spsa_n=20, white_box=None):
    """Runs every check on the first ``n`` images; returns {name: {passed, detail}}.

    ``white_box`` holds the white-box attack's `threats.white_box_fn` settings (``bpda``, ``eot``), the
    same as the evaluation's: the checks test the attack the report ran, not a different one.
    """
    x, y = x[:n], np.asarray(y[:n])
    spsa_n = min(spsa_n, len(x))
    model = as_defended(model, x.shape[1:])
    checks = {}

    def acc(attack, threat, params, xs=x, ys=y):
        p = evaluation.attack_params(attack, params.get("eps", eps), {attack: params})
        logits_fn = evaluation.attack_fn(model, threat, attack, white_box=white_box)
        x_adv = evaluation.run_attack(attack, logits_fn, xs, ys, p, seed, model)
        label, _, rejected = evaluation.defended_outputs(model, x_adv)
        return float(np.mean(label == ys)), float(np.mean(rejected)), x_adv

    _, _, x_gray = acc("pgd", "gray", {})
    undefended = evaluation.accuracy(model.classifier, x_gray, y)
    # A robust classifier (adversarial training) is its own defense: there is no bare classifier to fall.
    own_defense = model.purifier is None and not model.detectors
    detail = f"bare classifier under PGD eps={eps}: {undefended:.3f} (want <= 0.05)"
    passed = None if own_defense else undefended <= 0.05
    if own_defense:
        detail += ": does not apply, the classifier's own weights are the defense"
    elif not passed:
        # A purifier in front of an adversarially trained classifier: the bare classifier is meant to hold.
        # The check is about the attack, so it asks whether the same attack breaks that classifier unbounded.
        _, _, x_wide = acc("pgd", "gray", {"eps": 1.0, "eps_iter": 0.1, "nb_iter": 40})
        wide = evaluation.accuracy(model.classifier, x_wide, y)
        if wide <= 0.05:
            passed = None
            detail += (f": does not apply, the classifier behind the defense is itself robust (the same attack "
                       f"unbounded, eps=1.0, takes it to {wide:.3f})")
    checks["undefended_falls_under_pgd"] = _check(passed, detail)
    p10, p40 = _pgd(10, eps), _pgd(40, eps)
    a10, _, _ = acc("pgd", "white", p10)
    a40, _, _ = acc("pgd", "white", p40)
    checks["more_iterations_never_help"] = _check(
        a40 <= a10 + TOLERANCE, f"white-box PGD 10 iterations (step {p10['eps_iter']:g}): {a10:.3f}, "
                                f"40 iterations (step {p40['eps_iter']:g}): {a40:.3f}")
    a_unb, r_unb, _ = acc("pgd", "white", {"eps": 1.0, "eps_iter": 0.1, "nb_iter": 40})
    checks["unbounded_attack_succeeds"] = _check(
        a_unb <= 0.1 or r_unb >= 0.9, f"white-box PGD eps=1.0: accuracy {a_unb:.3f}, rejected {r_unb:.3f}")
    grad = threats.input_gradient_norm(threats.white_box_fn(model, **(white_box or {})), x[:16], y[:16])
    checks["attack_gradient_nonzero"] = _check(grad > 0, f"mean L1 norm of the white-box input gradient: {grad:.3g}")
    a_spsa, _, _ = acc("spsa", "white", {}, x[:spsa_n], y[:spsa_n])
    a_pgd, _, _ = acc("pgd", "white", p40, x[:spsa_n], y[:spsa_n])
    checks["gradient_free_not_much_stronger"] = _check(
        a_spsa >= a_pgd - 0.05,
        f"n={spsa_n}: SPSA accuracy {a_spsa:.3f} vs white-box PGD-40 {a_pgd:.3f} (masking flagged if SPSA is "
        "more than 0.05 lower)")
    return checks
