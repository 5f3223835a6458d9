"""Cost versus robustness: AE-GAN+rs against Defense-GAN on the same images.

For each setting (AE-GAN+rs over L; Defense-GAN over L and R) it measures, on
the same ``eval`` images and the same classifier A: purified images/s (search
on every image), gradient steps per image (L x R), FLOPs per image, and
gray-box FGSM accuracy. It also times the detector-bypass stream (90% clean,
10% adversarial images) against searching everything. Prints JSON and writes
a PNG of accuracy versus compute.

    python benchmarks/purification_cost.py [--dataset=mnist] [--n=200] [--output_dir=out/cost]

A model without pretrained weights is measured with a randomly initialised
generator: its throughput is real, its accuracy is marked as not meaningful.
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_string("dataset", "mnist", "mnist or fmnist.")
flags.DEFINE_integer("n", 200, "Images per measurement (the R=10, L=200 setting runs at about 1 image/s).")
flags.DEFINE_float("eps", 0.3, "Gray-box FGSM budget.")
flags.DEFINE_integer("seed", 0, "Image sampling seed.")
flags.DEFINE_string("output_dir", None, "Where to write cost.json and accuracy_vs_compute.png.")
FLAGS = flags.FLAGS

AEGAN_STEPS = (0, 5, 15, 30, 60)
DEFENSEGAN_SETTINGS = ((1, 10), (1, 60), (1, 200), (10, 10), (10, 60), (10, 200))  # (R, L)


def _load(name, **settings):
    """The pretrained model, or (Defense-GAN only) one with a random generator."""
    import tfdefense
    from tfdefense import registry

    try:
        return tfdefense.load(name, **settings), True
    except tfdefense.WeightsError:
        if not name.startswith("defensegan"):
            raise
        from tfdefense.defensegan import WGANGP, build_defended

        entry = registry.get_entry(name)
        generator = WGANGP.from_config_dict(entry["config"]).generator
        return build_defended(generator, tfdefense.load(entry["inference"]["classifier"]), **settings), False


def _measure(model, x, x_adv, y):
    start = time.perf_counter()
    out = model.defend(x_adv)
    seconds = time.perf_counter() - start
    return {"images_per_s": round(len(x) / seconds, 2), "gray_fgsm_accuracy": round(float((out["label"] == y).mean()), 4)}


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from tfdefense import attacks, harness
    from tfdefense.purification import cost

    short = "fmnist" if FLAGS.dataset in ("fmnist", "fashion_mnist") else "mnist"
    dataset = "fashion_mnist" if short == "fmnist" else "mnist"
    x, y = harness.sample(dataset, FLAGS.n, FLAGS.seed)
    result = {"dataset": dataset, "n": int(len(x)), "eps": FLAGS.eps, "seed": FLAGS.seed, "aegan": [], "defensegan": []}

    base, pretrained = _load(f"aegan_{short}")
    x_adv = attacks.fgsm(base.classifier, x, y, eps=FLAGS.eps)
    for steps in AEGAN_STEPS:
        model, _ = _load(f"aegan_{short}", steps=steps, threshold=None)  # search every image
        row = {"steps": steps, "restarts": 1, "gradient_steps": steps, "pretrained": pretrained,
               "flops_per_image": cost.search_flops(model.decoder, model.encoder, steps, 1)}
        row.update(_measure(model, x, x_adv, y))
        result["aegan"].append(row)
    for restarts, steps in DEFENSEGAN_SETTINGS:
        model, dg_pretrained = _load(f"defensegan_{short}", steps=steps, restarts=restarts)
        row = {"steps": steps, "restarts": restarts, "gradient_steps": steps * restarts, "pretrained": dg_pretrained,
               "flops_per_image": cost.search_flops(model.decoder, None, steps, restarts)}
        row.update(_measure(model, x, x_adv, y))
        if not dg_pretrained:
            row["gray_fgsm_accuracy"] = None  # a random generator: only the speed is meaningful
        result["defensegan"].append(row)

    ours = next(r for r in result["aegan"] if r["steps"] == 15)
    theirs = next(r for r in result["defensegan"] if (r["restarts"], r["steps"]) == (10, 200))
    result["throughput_ratio_aegan_l15_vs_defensegan_r10_l200"] = round(ours["images_per_s"] / theirs["images_per_s"], 1)

    # The bypass stream: 90% clean, 10% adversarial, in one shuffled stream.
    k = len(x) // 10
    stream = np.concatenate([x[k:], x_adv[:k]])[np.random.default_rng(FLAGS.seed).permutation(len(x))]
    for label, model in (("bypass", base), ("search_everything", _load(f"aegan_{short}", threshold=None)[0])):
        start = time.perf_counter()
        model.defend(stream)
        result[f"stream_images_per_s_{label}"] = round(len(stream) / (time.perf_counter() - start), 1)

    print(json.dumps(result, indent=2))
    if FLAGS.output_dir:
        from tfdefense import plots

        os.makedirs(FLAGS.output_dir, exist_ok=True)
        with open(os.path.join(FLAGS.output_dir, "cost.json"), "w") as f:
            json.dump(result, f, indent=2)
        plots.accuracy_vs_compute(os.path.join(FLAGS.output_dir, "accuracy_vs_compute.png"), result)


if __name__ == "__main__":
    app.run(main)
