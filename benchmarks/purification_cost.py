"""Cost versus robustness: AE-GAN+rs, Defense-GAN and the one-pass purifiers
(MagNet's reformer, APE-GAN, PuVAE's C class-conditional reconstructions) on
the same images.

One run measures, for each search setting (AE-GAN+rs over L and R,
Defense-GAN over L and R), on the same ``eval`` images and the same
classifier A:

* purified images/s with the search run on every image (one batch of up to
  128 images, after a warm-up call), gradient steps per image (L x R) and
  FLOPs per image;
* the paper's Table 2 columns through the package's evaluation: clean
  accuracy, gray-box FGSM and white-box FGSM (BPDA, one EOT sample, as FGSM
  takes one gradient), all at eps 0.3.

It also times the detector-bypass stream (90% clean, 10% adversarial images)
against searching everything, prints JSON, and writes cost.json, table2.md
(measured beside the paper's Table 2) and a PNG of accuracy versus compute.

    python benchmarks/purification_cost.py --dataset=mnist --n=500 --n_heavy=200 --output_dir=out/cost
    python benchmarks/purification_cost.py --speed_only --output_dir=out/cost   # throughput only: speed.json

Every setting runs with no rejection (threshold off), so the accuracies are
those of purification alone. A Defense-GAN without pretrained weights is
measured with a randomly initialised generator: its throughput is real, its
accuracies are left out.
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_string("dataset", "mnist", "mnist or fmnist.")
flags.DEFINE_integer("n", 500, "Images per accuracy measurement.")
flags.DEFINE_integer("n_heavy", 200, "Images for settings above 1000 gradient steps per image (R=10, L=200).")
flags.DEFINE_integer("speed_batch", 128, "Images in the timed batch.")
flags.DEFINE_float("eps", 0.3, "FGSM budget.")
flags.DEFINE_integer("seed", 0, "Image sampling and attack seed.")
flags.DEFINE_boolean("speed_only", False, "Measure throughput only (skip the accuracy columns).")
flags.DEFINE_string("only", None, "Comma-separated methods to run (aegan, defensegan, magnet, apegan, puvae, fmdefense); "
                    "default all.")
flags.DEFINE_string("output_dir", None, "Where to write cost.json, table2.md and accuracy_vs_compute.png.")
FLAGS = flags.FLAGS

# (method, R, L). AE-GAN+rs starts from the encoder's code; R > 1 adds random starts.
SETTINGS = (("aegan", 1, 0), ("aegan", 1, 10), ("aegan", 1, 15), ("aegan", 1, 60), ("aegan", 1, 200),
            ("aegan", 10, 10),
            ("defensegan", 1, 10), ("defensegan", 1, 60), ("defensegan", 1, 200),
            ("defensegan", 10, 10), ("defensegan", 10, 60), ("defensegan", 10, 200))
HEAVY = 1000  # gradient steps per image above which n_heavy images are used
# Purifiers that take one forward pass (no search): timed and evaluated in the same run, R = L = 0.
ONE_PASS = ("magnet", "apegan", "puvae")
# Defenses whose cost is the detector itself (FM-Defense classifies S codes x N morphs per input): timed and
# evaluated with the detector on, as shipped; the purifier only runs on what it flags.
DETECTING = ("fmdefense",)
NAMES = {"aegan": "AE-GAN+rs", "defensegan": "Defense-GAN", "magnet": "MagNet (reformer)", "apegan": "APE-GAN",
         "puvae": "PuVAE", "fmdefense": "FM-Defense (detector on)"}

# AE-GAN+rs (anon.) Table 2 (classifier A, FGSM eps 0.3): {dataset: {(method, R, L): (clean, white, gray)}}.
PAPER_TABLE2 = {
    "mnist": {("aegan", 1, 10): (0.982, 0.984, 0.880), ("aegan", 1, 60): (0.985, 0.985, 0.884),
              ("defensegan", 1, 10): (0.545, 0.537, 0.398), ("defensegan", 1, 60): (0.693, 0.688, 0.570),
              ("defensegan", 10, 10): (0.909, 0.905, 0.769), ("defensegan", 10, 60): (0.967, 0.964, 0.863)},
    "fashion_mnist": {("aegan", 1, 10): (0.837, 0.799, 0.604), ("aegan", 1, 60): (0.841, 0.804, 0.595),
                      ("defensegan", 1, 10): (0.405, 0.403, 0.296), ("defensegan", 1, 60): (0.530, 0.527, 0.325),
                      ("defensegan", 10, 10): (0.696, 0.697, 0.441), ("defensegan", 10, 60): (0.788, 0.787, 0.432)},
}


def _load(name, **settings):
    """The pretrained model, or (Defense-GAN only) one with a random generator."""
    import tfdefense
    from tfdefense.zoo import registry

    try:
        return tfdefense.load(name, **settings), True
    except tfdefense.WeightsError:
        if not name.startswith("defensegan"):
            raise
        from tfdefense.families.defensegan import WGANGP, build_defended

        entry = registry.get_entry(name)
        generator = WGANGP.from_config_dict(entry["config"]).generator
        return build_defended(generator, registry.load_classifier(entry["inference"]["classifier"]), **settings), False


def _morph_detector_flops(model):
    """FLOPs per image of FM-Defense as shipped, for an input that is flagged: the code encoder once,
    S x N morphs decoded and classified, the input classified, and the purifier's three networks."""
    from tfdefense.defense import cost

    detector, purifier = model.detectors[0], model.purifier
    morphs = len(detector.codes) * detector.morphs
    classify = cost.forward_flops(model.classifier)
    return (cost.forward_flops(detector.encoder) + morphs * (cost.forward_flops(detector.decoder) + classify)
            + classify + sum(cost.forward_flops(getattr(purifier, p)) for p in ("shared_encoder", "enhanced_decoder"))
            + cost.forward_flops(purifier.dgmm))


def _one_pass_flops(purifier):
    """FLOPs per image of a one-pass purifier: its network once, or (PuVAE) the shared trunk once and the
    conditional head and decoder once per class."""
    from tfdefense.defense import cost

    if hasattr(purifier, "model"):
        return cost.forward_flops(purifier.model)
    return cost.forward_flops(purifier.trunk) + purifier.classes * (
        cost.forward_flops(purifier.head) + cost.forward_flops(purifier.decoder))


def _images_per_s(model, x):
    model.defend(x)  # trace for this exact batch shape first (a new shape retraces inside the timed call)
    start = time.perf_counter()
    model.defend(x)
    return round(len(x) / (time.perf_counter() - start), 2)


def measure_setting(method, restarts, steps, short, x, y):
    """One row: cost and Table 2 accuracies of a search setting (R = L = 0: a one-pass purifier)."""
    from tfdefense import evaluation
    from tfdefense.defense import cost

    if method in ONE_PASS:  # no search; every detector off, as for the search rows
        model, pretrained = _load(f"{method}_{short}")
        model.set_thresholds({name: None for name in model.thresholds})
        flops = _one_pass_flops(model.purifier)
    elif method in DETECTING:
        model, pretrained = _load(f"{method}_{short}")
        flops = _morph_detector_flops(model)
    else:
        model, pretrained = _load(f"{method}_{short}", steps=steps, restarts=restarts, threshold=None)
        flops = cost.search_flops(model.purifier.decoder, model.purifier.encoder, steps, restarts)
    row = {"method": method, "restarts": restarts, "steps": steps, "gradient_steps": steps * restarts,
           "pretrained": pretrained, "flops_per_image": flops, "images_per_s": _images_per_s(model, x[:FLAGS.speed_batch])}
    n = FLAGS.n_heavy if steps * restarts > HEAVY else FLAGS.n
    row["n"] = min(n, len(x))
    if pretrained and not FLAGS.speed_only:
        report = evaluation.evaluate(model, x[:n], y[:n], attacks=("fgsm",), threats=("gray", "white"), eps=FLAGS.eps,
                                     seed=FLAGS.seed, white_box={"eot": 1}, detector_aware=False)
        by_threat = {r.threat: r for r in report.results}
        row.update(clean=round(report.clean["accuracy_defended"], 4),
                   gray_fgsm=round(by_threat["gray"].accuracy_defended, 4),
                   white_fgsm=round(by_threat["white"].accuracy_defended, 4),
                   white_gradient=report.settings["white_box_gradient"])
    print(json.dumps(row), flush=True)  # each row as it is measured: a killed run keeps what it measured
    return row


def table2_markdown(result):
    """Measured Table 2 rows with the paper's numbers beside them."""
    paper = PAPER_TABLE2.get(result["dataset"], {})
    lines = [f"Classifier A, {result['dataset']} eval split, FGSM eps={result['eps']}, seed {result['seed']}; "
             "threshold off (no rejection); white-box = BPDA (AE-GAN: through G(F(x)); Defense-GAN: identity), "
             "1 EOT sample; one-pass purifiers (R = L = 0): their exact gradient; FM-Defense with its detector on "
             "(its cost), exact gradient through the route each input takes. Paper values (AE-GAN+rs (anon.) Table 2) in brackets.", "",
             "| method | R | L | n | images/s | clean | white FGSM | gray FGSM |", "|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        target = paper.get((row["method"], row["restarts"], row["steps"]))

        def cell(key, i):
            value = row.get(key)
            text = "-" if value is None else f"{value:.3f}"
            return text + (f" ({target[i]:.3f})" if target else "")

        name = NAMES[row["method"]]
        lines.append(f"| {name} | {row['restarts']} | {row['steps']} | {row['n']} | {row['images_per_s']} | "
                     f"{cell('clean', 0)} | {cell('white_fgsm', 1)} | {cell('gray_fgsm', 2)} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from tfdefense.evaluation import attacks, harness

    short = "fmnist" if FLAGS.dataset in ("fmnist", "fashion_mnist") else "mnist"
    dataset = "fashion_mnist" if short == "fmnist" else "mnist"
    methods = FLAGS.only.split(",") if FLAGS.only else ["aegan", "defensegan", *ONE_PASS, *DETECTING]
    x, y = harness.sample(dataset, max(FLAGS.n, FLAGS.n_heavy, FLAGS.speed_batch), FLAGS.seed)
    result = {"dataset": dataset, "eps": FLAGS.eps, "seed": FLAGS.seed, "speed_batch": FLAGS.speed_batch,
              "rows": [measure_setting(m, r, s, short, x, y) for m, r, s in SETTINGS if m in methods]
              + [measure_setting(m, 0, 0, short, x, y) for m in ONE_PASS + DETECTING if m in methods]}

    def find(method, restarts, steps):
        return next((r for r in result["rows"] if (r["method"], r["restarts"], r["steps"]) == (method, restarts, steps)),
                    None)

    theirs = find("defensegan", 10, 200)
    for key, ours in (("aegan_l15", find("aegan", 1, 15)), ("puvae", find("puvae", 0, 0))):
        if ours and theirs:  # Hwang et al. claim PuVAE is about 130x faster than Defense-GAN
            result[f"throughput_ratio_{key}_vs_defensegan_r10_l200"] = round(
                ours["images_per_s"] / theirs["images_per_s"], 1)

    if "aegan" in methods:  # the bypass stream: 90% clean, 10% gray-box FGSM, shuffled
        base, _ = _load(f"aegan_{short}")
        k = FLAGS.n // 10
        x_adv = attacks.fgsm(base.classifier, x[:k], y[:k], eps=FLAGS.eps)
        stream = np.concatenate([x[k:FLAGS.n], x_adv])[np.random.default_rng(FLAGS.seed).permutation(FLAGS.n)]
        for label, model in (("bypass", base), ("search_everything", _load(f"aegan_{short}", threshold=None)[0])):
            result[f"stream_images_per_s_{label}"] = _images_per_s(model, stream)

    print(json.dumps(result, indent=2))
    if FLAGS.output_dir:
        from tfdefense.evaluation import plots

        os.makedirs(FLAGS.output_dir, exist_ok=True)
        if FLAGS.speed_only:
            with open(os.path.join(FLAGS.output_dir, "speed.json"), "w") as f:
                json.dump(result, f, indent=2)
            return
        with open(os.path.join(FLAGS.output_dir, "cost.json"), "w") as f:
            json.dump(result, f, indent=2)
        with open(os.path.join(FLAGS.output_dir, "table2.md"), "w") as f:
            f.write(table2_markdown(result))
        plots.accuracy_vs_compute(os.path.join(FLAGS.output_dir, "accuracy_vs_compute.png"), result)


if __name__ == "__main__":
    app.run(main)
