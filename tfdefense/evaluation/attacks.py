"""Attacks as plain functions over CleverHans 4, batched, on logits functions.

Every attack has the form ``fn(model_fn, x, y, *, ..., clip_min, clip_max)``
where ``model_fn`` maps a float32 batch to logits; it returns numpy
adversarial images. Settings are checked up front with ``ValueError``.

Example:
    >>> from tfdefense import attacks
    >>> x_adv = attacks.fgsm(classifier, x, y, eps=0.3)          # doctest: +SKIP
    >>> x_adv = attacks.pgd(classifier, x, y, eps=0.3, seed=0)   # doctest: +SKIP

Reference:
    Papernot et al., Technical report on the CleverHans library (2018).
"""

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks import carlini_wagner_l2 as _cw
from cleverhans.tf2.attacks.basic_iterative_method import basic_iterative_method
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method
from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent
from cleverhans.tf2.attacks import spsa as _spsa_lib

from tfdefense.utils import batching, progress


def _check(x, y, eps=None, clip_min=0.0, clip_max=1.0):
    x = np.asarray(x, np.float32)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch [N, H, W, C], got shape {x.shape}.")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
    if eps is not None and not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}.")
    if not clip_min < clip_max:
        raise ValueError(f"clip_min {clip_min} must be below clip_max {clip_max}.")
    return x, None if y is None else np.asarray(y, np.int64)


def _batched(fn, x, y, batch_size, desc):
    out = np.empty_like(x)
    for start in progress.bar(range(0, len(x), batch_size), desc=desc):
        sl = slice(start, start + batch_size)
        out[sl] = np.asarray(fn(tf.constant(x[sl]), None if y is None else tf.constant(y[sl])))
    return out


def fgsm(model_fn, x, y=None, *, eps, norm=np.inf, clip_min=0.0, clip_max=1.0, batch_size=256):
    """Fast gradient sign method (Goodfellow et al., 2014), untargeted."""
    x, y = _check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    return _batched(lambda xb, yb: fast_gradient_method(model_fn, xb, eps, norm, clip_min=clip_min,
                                                        clip_max=clip_max, y=yb), x, y, batch_size, "fgsm")


def _labels(model_fn, x, batch_size):
    return batching.concat_map(lambda b: np.argmax(np.asarray(model_fn(tf.constant(b))), axis=-1), x, batch_size)


def pgd(model_fn, x, y=None, *, eps, eps_iter=0.01, nb_iter=40, norm=np.inf, rand_init=True, restarts=1, seed=0,
        clip_min=0.0, clip_max=1.0, batch_size=256):
    """Projected gradient descent with a random start (Madry et al., 2017).

    With ``restarts`` > 1 (random starts only), each image keeps the first
    restart's example that ``model_fn`` misclassifies (restart r draws its
    start with seed ``seed + r``), else the last one.
    """
    x, y = _check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    if not 0 < eps_iter:
        raise ValueError(f"eps_iter must be > 0, got {eps_iter!r}.")
    if restarts < 1 or (restarts > 1 and not rand_init):
        raise ValueError(f"restarts must be >= 1, and > 1 needs rand_init=True; got {restarts}, {rand_init}.")
    target = _labels(model_fn, x, batch_size) if y is None else y
    best, fooled = None, np.zeros(len(x), bool)
    for r in range(restarts):
        tf.random.set_seed(seed + r)  # CleverHans draws the random start from the global generator
        adv = _batched(lambda xb, yb: projected_gradient_descent(
            model_fn, xb, eps, min(eps_iter, eps), nb_iter, norm, clip_min=clip_min, clip_max=clip_max, y=yb,
            rand_init=rand_init, sanity_checks=False), x, y, batch_size, f"pgd restart {r + 1}/{restarts}"
            if restarts > 1 else "pgd")
        if restarts == 1:
            return adv
        wrong = _labels(model_fn, adv, batch_size) != target  # one labelling pass per restart
        if best is None:
            best, fooled = adv, wrong
        else:
            take = ~fooled & wrong
            best = np.where(take[:, None, None, None], adv, best)
            fooled |= take
        if fooled.all():
            break
    return best


def bim(model_fn, x, y=None, *, eps, eps_iter=0.01, nb_iter=40, norm=np.inf, clip_min=0.0, clip_max=1.0,
        batch_size=256):
    """Basic iterative method (Kurakin et al., 2016): PGD without a random start."""
    x, y = _check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    return _batched(lambda xb, yb: basic_iterative_method(
        model_fn, xb, eps, min(eps_iter, eps), nb_iter, norm, clip_min=clip_min, clip_max=clip_max, y=yb,
        sanity_checks=False), x, y, batch_size, "bim")


def mim(model_fn, x, y=None, *, eps, eps_iter=0.03, nb_iter=20, decay_factor=1.0, norm=np.inf, clip_min=0.0,
        clip_max=1.0, batch_size=256):
    """Momentum iterative method (Dong et al., 2018)."""
    x, y = _check(x, y, eps, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    return _batched(lambda xb, yb: momentum_iterative_method(
        model_fn, xb, eps, min(eps_iter, eps), nb_iter, norm, clip_min=clip_min, clip_max=clip_max, y=yb,
        decay_factor=decay_factor, sanity_checks=False), x, y, batch_size, "mim")


class _SPSAAdam(_spsa_lib.SPSAAdam):
    """CleverHans' SPSA optimizer, constructible under Keras 3.

    Upstream passes ``lr=`` to ``keras.optimizers.Adam``, which Keras 3
    rejects; the class only borrows Adam's beta_1, beta_2 and epsilon and does
    its own update with ``self.lr``.
    """

    def __init__(self, lr=0.01, delta=0.01, num_samples=128, num_iters=1):
        tf.keras.optimizers.Adam.__init__(self, learning_rate=lr)
        if num_samples % 2:
            raise ValueError(f"spsa_samples must be even, got {num_samples}.")
        self.lr = lr
        self._delta = delta
        self._num_samples = num_samples // 2  # mirrored +/- delta
        self._num_iters = num_iters
        self._compare_to_analytic_grad = False


def _spsa_one(model_fn, x, y, eps, nb_iter, clip_min, clip_max, learning_rate, delta, spsa_samples):
    def loss_fn(xb, label):  # untargeted: minimise minus the margin
        logits = model_fn(xb)
        return -_spsa_lib.margin_logit_loss(logits, label, nb_classes=logits.shape[-1])

    optimizer = _SPSAAdam(lr=learning_rate, delta=delta, num_samples=spsa_samples)
    return _spsa_lib.projected_optimization(loss_fn, x, y, eps, nb_iter, optimizer, clip_min, clip_max)


def spsa(model_fn, x, y, *, eps, nb_iter=20, spsa_samples=64, learning_rate=0.01, delta=0.01, seed=0,
         clip_min=0.0, clip_max=1.0):
    """SPSA (Uesato et al., 2018): gradient-free, so it sees through masked gradients.

    One image at a time (CleverHans' implementation requires it), through a
    small adapter for Keras 3 (see `_SPSAAdam`); costs
    ``nb_iter * spsa_samples`` forward passes per image.
    """
    x, y = _check(x, y, eps, clip_min, clip_max)
    if y is None:
        raise ValueError("spsa needs the true labels y.")
    if eps == 0:
        return x.copy()
    tf.random.set_seed(seed)
    out = np.empty_like(x)
    for i in progress.bar(range(len(x)), desc="spsa"):
        out[i] = np.asarray(_spsa_one(model_fn, tf.constant(x[i:i + 1]), tf.constant(y[i:i + 1]), eps, nb_iter,
                                      clip_min, clip_max, learning_rate, delta, spsa_samples))[0]
    return out


def deepfool(model_fn, x, y=None, *, norm="l2", overshoot=0.02, max_iter=50, num_classes=10, eps=None,
             clip_min=0.0, clip_max=1.0, batch_size=128):
    """DeepFool (Moosavi-Dezfooli et al., 2016), L2 or Linf, batched; CleverHans 4 has none.

    Each step linearises the classifier around the current point and moves to
    the nearest linearised decision boundary among ``num_classes`` classes,
    times (1 + overshoot). Images already misclassified stop moving. With
    ``eps`` the final perturbation is clipped to that norm ball.
    """
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm must be 'l2' or 'linf', got {norm!r}.")
    x, y = _check(x, y, eps, clip_min, clip_max)
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}.")
    if eps == 0:
        return x.copy()

    def run(xb, yb):
        labels = tf.argmax(model_fn(xb), axis=1) if yb is None else tf.cast(yb, tf.int64)
        return _deepfool_batch(model_fn, xb, labels, norm, overshoot, max_iter, num_classes, eps, clip_min, clip_max)

    return _batched(run, x, y, batch_size, f"deepfool_{norm}")


def _deepfool_batch(model_fn, x, labels, norm, overshoot, max_iter, num_classes, eps, clip_min, clip_max):
    x0 = tf.convert_to_tensor(x)
    r_total = tf.zeros_like(x0)
    onehot = tf.one_hot(labels, num_classes)

    @tf.function(reduce_retracing=True)
    def logits_and_gradients(x_adv):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x_adv)
            logits = model_fn(x_adv)
            per_class = [logits[:, k] for k in range(num_classes)]
        return logits, tf.stack([tape.gradient(per_class[k], x_adv) for k in range(num_classes)], axis=1)

    for _ in range(max_iter):
        x_adv = tf.clip_by_value(x0 + (1 + overshoot) * r_total, clip_min, clip_max)
        logits, grads = logits_and_gradients(x_adv)
        active = tf.equal(tf.argmax(logits, 1), labels)
        if not bool(tf.reduce_any(active)):
            break
        f_true = tf.reduce_sum(logits * onehot, 1, keepdims=True)
        g_true = tf.einsum("bk,bkhwc->bhwc", onehot, grads)[:, None]
        w = grads - g_true                                # [B, K, H, W, C]
        f = logits - f_true                               # [B, K]
        flat = tf.reshape(w, [tf.shape(w)[0], num_classes, -1])
        w_norm = tf.norm(flat, axis=2) if norm == "l2" else tf.reduce_sum(tf.abs(flat), axis=2)
        dist = tf.abs(f) / (w_norm + 1e-8) + onehot * 1e10  # never step towards the true class
        k_best = tf.argmin(dist, axis=1)
        w_best = tf.gather(w, k_best, batch_dims=1)
        d_best = tf.gather(dist, k_best, batch_dims=1)[:, None, None, None]
        if norm == "l2":
            w_flat = tf.reshape(w_best, [tf.shape(w_best)[0], -1])
            step = (d_best + 1e-4) * w_best / (tf.norm(w_flat, axis=1)[:, None, None, None] + 1e-8)
        else:
            step = (d_best + 1e-4) * tf.sign(w_best)
        r_total += tf.where(active[:, None, None, None], step, tf.zeros_like(step))
    delta = (1 + overshoot) * r_total
    if eps is not None:
        if norm == "l2":
            n = tf.norm(tf.reshape(delta, [tf.shape(delta)[0], -1]), axis=1)[:, None, None, None]
            delta = delta * tf.minimum(1.0, eps / (n + 1e-12))
        else:
            delta = tf.clip_by_value(delta, -eps, eps)
    return tf.clip_by_value(x0 + delta, clip_min, clip_max)


def pgd_detector_aware(model_fn, score_fn, threshold, x, y, *, eps, eps_iter=0.01, nb_iter=40, penalty=10.0,
                       seed=0, clip_min=0.0, clip_max=1.0, batch_size=256):
    """PGD that also keeps the detector quiet.

    Ascends cross-entropy(model_fn(x'), y) - penalty * relu(score_fn(x') - threshold)
    with signed steps inside the Linf ball, from a random start. ``score_fn``
    must be differentiable (e.g. the reconstruction error against G(F(x))).
    """
    x, y = _check(x, y, eps, clip_min, clip_max)
    if y is None:
        raise ValueError("pgd_detector_aware needs the true labels y.")
    rng = np.random.default_rng(seed)

    @tf.function(reduce_retracing=True)
    def step(x_adv, xb, yb):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            ce = tf.keras.losses.sparse_categorical_crossentropy(yb, model_fn(x_adv), from_logits=True)
            loss = ce - penalty * tf.nn.relu(score_fn(x_adv) - threshold)
        x_adv = x_adv + eps_iter * tf.sign(tape.gradient(loss, x_adv))
        return tf.clip_by_value(tf.clip_by_value(x_adv, xb - eps, xb + eps), clip_min, clip_max)

    def run(xb, yb):
        x_adv = tf.clip_by_value(xb + rng.uniform(-eps, eps, xb.shape).astype(np.float32), clip_min, clip_max)
        for _ in range(nb_iter):
            x_adv = step(x_adv, xb, yb)
        return x_adv

    return _batched(run, x, y, batch_size, "pgd_detector_aware")


class _CarliniWagnerL2(_cw.CarliniWagnerL2):
    """CleverHans 4.0.0's CW-L2 with its Keras 3 failures fixed.

    Upstream (a) calls ``optimizer.variables()``, a property in Keras 3; (b)
    reuses one optimizer for the new ``modifier`` variable of every batch; (c)
    builds ``const`` with the image's shape instead of one per example, which
    mixes the examples' losses. This class replaces only the per-batch loop.
    """

    def _attack(self, x):
        y = tf.one_hot(self.y_batch, self.num_classes) if self.y_batch is not None else None
        if y is None:
            y = tf.one_hot(tf.argmax(self.model_fn(x), axis=1), self.num_classes)
        original = tf.cast(x, tf.float32)
        n = original.shape[0]
        w = tf.atanh((tf.clip_by_value((original - self.clip_min) / (self.clip_max - self.clip_min), 0, 1)
                      * 2 - 1) * 0.999999)
        lower, upper = np.zeros(n), np.full(n, 1e10)
        const = np.full(n, self.initial_const)
        best_l2, best_attack = np.full(n, 1e10), original.numpy()
        labels = np.argmax(y.numpy(), axis=1)
        modifier = tf.Variable(tf.zeros_like(original))
        for _ in range(self.binary_search_steps):
            modifier.assign(tf.zeros_like(original))
            optimizer = tf.keras.optimizers.Adam(self.learning_rate)  # fresh state for every search step
            success = np.zeros(n, bool)
            for _ in range(self.max_iterations):
                x_new, grads, _, preds, l2 = self.gradient(w, y, modifier, tf.constant(const, tf.float32))
                optimizer.apply_gradients([(grads, modifier)])
                pred = np.argmax(preds.numpy() + (0 if self.targeted else self.confidence) * y.numpy(), axis=1)
                fooled = (pred == labels) if self.targeted else (pred != labels)
                better = fooled & (l2.numpy() < best_l2)
                best_l2 = np.where(better, l2.numpy(), best_l2)
                best_attack[better] = x_new.numpy()[better]
                success |= fooled
            # Binary search on the per-example constant.
            upper = np.where(success, np.minimum(upper, const), upper)
            lower = np.where(success, lower, np.maximum(lower, const))
            const = np.where(upper < 1e9, (lower + upper) / 2, const * 10)
        return tf.constant(best_attack)


def cw_l2(model_fn, x, y=None, *, confidence=0.0, learning_rate=0.1, binary_search_steps=5,
          max_iterations=100, initial_const=10.0, clip_min=0.0, clip_max=1.0, batch_size=128):
    """Carlini-Wagner L2 (2017) through CleverHans, with the Keras 3 fixes.

    Examples where no adversarial is found are returned unchanged.
    """
    x, y = _check(x, y, None, clip_min, clip_max)
    if binary_search_steps < 1 or max_iterations < 1:
        raise ValueError("binary_search_steps and max_iterations must be >= 1.")
    num_classes = int(model_fn(tf.constant(x[:1])).shape[-1])

    def run(xb, yb):
        attack = _CarliniWagnerL2(model_fn, batch_size=len(xb), confidence=confidence, learning_rate=learning_rate,
                                  binary_search_steps=binary_search_steps, max_iterations=max_iterations,
                                  abort_early=False, initial_const=initial_const, clip_min=clip_min,
                                  clip_max=clip_max)
        attack.y_batch, attack.num_classes = yb, num_classes
        return attack._attack(xb)

    return _batched(run, x, y, batch_size, "cw_l2")


def cw_linf(model_fn, x, y=None, *, confidence=0.0, learning_rate=0.01, max_iter=50, rounds=20,
            initial_const=0.1, largest_const=20.0, tau_decrease=0.9, clip_min=0.0, clip_max=1.0, batch_size=128):
    """Carlini-Wagner Linf (2017), batched (ART's runs one image at a time: hours for a few hundred).

    Per image, Carlini's algorithm minimises ``c * f(x + d) + sum(relu(|d| - tau))`` where f is the
    margin max(Z_y - max_{j != y} Z_j, -confidence) and tau a bound that starts at 1. After each
    round of ``max_iter`` Adam steps, an image whose example is misclassified records it (when its
    Linf distortion is the smallest yet) and tightens tau to ``tau_decrease`` times that distortion;
    one that is not doubles c, and stops once c passes ``largest_const``. All images of a batch
    advance together, for at most ``rounds`` rounds, warm-started from the previous round.

    Returns the smallest-Linf example found per image that another class's logit beats the label's by
    more than ``confidence``; images with none come back unchanged.
    """
    x, y = _check(x, y, None, clip_min, clip_max)
    if max_iter < 1 or rounds < 1:
        raise ValueError(f"max_iter and rounds must be >= 1, got {max_iter}, {rounds}.")
    num_classes = int(model_fn(tf.constant(x[:1])).shape[-1])

    @tf.function(reduce_retracing=True)
    def optimise(x0, onehot, delta, tau, const):
        m, v = tf.zeros_like(delta), tf.zeros_like(delta)
        for i in tf.range(1, max_iter + 1):
            with tf.GradientTape() as tape:
                tape.watch(delta)
                z = tf.cast(model_fn(tf.clip_by_value(x0 + delta, clip_min, clip_max)), tf.float32)
                real = tf.reduce_sum(onehot * z, axis=1)
                other = tf.reduce_max(z - 1e9 * onehot, axis=1)
                margin = tf.nn.relu(real - other + confidence)
                excess = tf.reduce_sum(tf.nn.relu(tf.abs(delta) - tau[:, None, None, None]), axis=[1, 2, 3])
                loss = tf.reduce_sum(const * margin + excess)
            g = tape.gradient(loss, delta)
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * tf.square(g)
            t = tf.cast(i, tf.float32)
            step = learning_rate * (m / (1 - 0.9 ** t)) / (tf.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
            delta = tf.clip_by_value(x0 + delta - step, clip_min, clip_max) - x0
        return delta

    def run(xb, yb):
        labels = tf.argmax(model_fn(xb), axis=1) if yb is None else tf.cast(yb, tf.int64)
        onehot = tf.one_hot(labels, num_classes)
        n = int(xb.shape[0])
        delta, tau = tf.zeros_like(xb), tf.ones([n])
        const, stopped = tf.fill([n], float(initial_const)), tf.zeros([n], tf.bool)
        best, best_linf = xb, tf.fill([n], np.inf)
        for _ in range(rounds):
            delta = optimise(xb, onehot, delta, tau, const)
            adv = tf.clip_by_value(xb + delta, clip_min, clip_max)
            z = tf.cast(model_fn(adv), tf.float32)  # fooled: another logit beats the label's by > confidence
            fooled = tf.reduce_max(z - 1e9 * onehot, axis=1) - tf.reduce_sum(onehot * z, axis=1) > confidence
            linf = tf.reduce_max(tf.abs(adv - xb), axis=[1, 2, 3])
            better = fooled & (linf < best_linf) & ~stopped
            best = tf.where(better[:, None, None, None], adv, best)
            best_linf = tf.where(better, linf, best_linf)
            tau = tf.where(fooled, tf.minimum(tau, linf) * tau_decrease, tau)
            const = tf.where(fooled, const, const * 2.0)
            stopped = stopped | (const > largest_const)
            if bool(tf.reduce_all(stopped)):
                break
        return best

    return _batched(run, x, y, batch_size, "cw_linf")


def half_mask(model_fn, x, y=None, *, side="bottom", value=0.0):
    """Blocks half of each image (sets it to ``value``): the Half-Masked corruption of Table 3 of
    AE-GAN+rs (anon.), which shows what a search adds when the encoder's code is far off.

    It ignores ``model_fn`` (the corruption is the same under every threat model).
    """
    x, _ = _check(x, y)
    sides = ("top", "bottom", "left", "right")
    if side not in sides:
        raise ValueError(f"side must be one of {sides}, got {side!r}.")
    out = x.copy()
    h, w = x.shape[1] // 2, x.shape[2] // 2
    region = {"top": np.s_[:, :h], "bottom": np.s_[:, h:], "left": np.s_[:, :, :w], "right": np.s_[:, :, w:]}[side]
    out[region] = value
    return out


def gaussian_noise(model_fn, x, y=None, *, variance=0.05, seed=0):
    """Benign input: white Gaussian noise of mean 0 and ``variance`` added to
    each pixel, clipped back to the valid range [0, 1] (Shen et al. 2017 Table 2,
    variance 0.05). It ignores ``model_fn``, like `half_mask`.
    """
    x, _ = _check(x, y)
    if not variance >= 0:
        raise ValueError(f"variance must be >= 0, got {variance!r}.")
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(variance), size=x.shape).astype(np.float32)
    return np.clip(x + noise, 0.0, 1.0)


ATTACKS = {"fgsm": fgsm, "bim": bim, "pgd": pgd, "mim": mim, "cw": cw_l2, "spsa": spsa,
           "deepfool": deepfool, "deepfool_linf": lambda *a, **k: deepfool(*a, norm="linf", **k),
           "cw_linf": cw_linf, "half_mask": half_mask, "gaussian_noise": gaussian_noise}
