"""Invert-and-Classify extras (robust manifold defense) measured on this machine.

1. The overpowered min-max attack on the defensegan generator: the fraction
   of valid pairs (mean squared image difference below ``valid_mse``) and,
   among them, the fraction classified differently, for classifier A and
   (if trained) the manifold-adversarially-trained classifier A.
2. Deep Image Prior INC with classifier A: clean, gray-box FGSM and
   white-box FGSM (BPDA identity, one EOT sample) on ``dip_n`` eval images.

Prints JSON; with --output_dir writes invert_and_classify.json and a PNG of
the attack's pairs.

    python benchmarks/invert_and_classify.py --dataset=mnist --output_dir=out/inc
"""

import json
import os

from absl import app, flags

flags.DEFINE_string("dataset", "mnist", "mnist or fmnist.")
flags.DEFINE_integer("pairs", 256, "Min-max pairs optimised in parallel.")
flags.DEFINE_integer("steps", 1000, "Min-max alternating steps.")
flags.DEFINE_integer("dip_n", 100, "Images for the Deep Image Prior evaluation (0 skips it).")
flags.DEFINE_integer("dip_steps", 300, "Deep Image Prior fitting steps (early stop at MSE 0.005).")
flags.DEFINE_float("eps", 0.3, "FGSM budget for the DIP evaluation.")
flags.DEFINE_integer("seed", 0, "Seed of the codes, images and DIP initialisation.")
flags.DEFINE_string("output_dir", None, "Where to write the JSON and the PNG.")
FLAGS = flags.FLAGS


def minmax_rows(short):
    import tfdefense
    from tfdefense.families.defensegan.minmax import minmax_attack

    generator = tfdefense.load(f"defensegan_{short}").purifier.decoder
    rows, pairs = [], {}
    for name in (f"classifier_a_{short}", f"classifier_a_{short}_manifold"):
        try:
            classifier = tfdefense.load(name).classifier
        except tfdefense.WeightsError:
            rows.append({"classifier": name, "skipped": "no pretrained weights"})
            continue
        result = minmax_attack(generator, classifier, n_pairs=FLAGS.pairs, steps=FLAGS.steps, seed=FLAGS.seed)
        pairs[name] = (generator(result["z"][:8], training=False).numpy(),
                       generator(result["z_prime"][:8], training=False).numpy())
        rows.append({"classifier": name, **{k: v for k, v in result.items() if k not in ("z", "z_prime")}})
    return rows, pairs


def dip_report(short):
    import tfdefense
    from tfdefense import evaluation
    from tfdefense.evaluation import harness
    from tfdefense.defense.defended import DefendedClassifier
    from tfdefense.purification import DeepImagePrior

    dataset = "fashion_mnist" if short == "fmnist" else "mnist"
    x, y = harness.sample(dataset, FLAGS.dip_n, FLAGS.seed)
    model = DefendedClassifier(tfdefense.load(f"classifier_a_{short}").classifier, DeepImagePrior(steps=FLAGS.dip_steps),
                               name=f"dip_{short}")
    report = evaluation.evaluate(model, x, y, attacks=("fgsm",), threats=("gray", "white"), eps=FLAGS.eps,
                                 seed=FLAGS.seed, white_box={"bpda": "identity", "eot": 1}, detector_aware=False,
                                 dataset=dataset, split="eval")
    return report.to_dict()


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    short = "fmnist" if FLAGS.dataset in ("fmnist", "fashion_mnist") else "mnist"
    rows, pairs = minmax_rows(short)
    result = {"dataset": FLAGS.dataset, "minmax": rows}
    if FLAGS.dip_n:
        result["dip"] = dip_report(short)
    print(json.dumps(result, indent=2, default=float))
    if FLAGS.output_dir:
        from tfdefense.evaluation import plots

        os.makedirs(FLAGS.output_dir, exist_ok=True)
        with open(os.path.join(FLAGS.output_dir, "invert_and_classify.json"), "w") as f:
            json.dump(result, f, indent=2, default=float)
        grid = {f"{name} {side}": images[i] for name, images in pairs.items() for i, side in enumerate(("G(z)", "G(z')"))}
        if grid:
            plots.image_grid(os.path.join(FLAGS.output_dir, "minmax_pairs.png"), grid,
                             title="min-max pairs: nearly equal images, classified apart?")


if __name__ == "__main__":
    app.run(main)
