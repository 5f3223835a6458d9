"""Where PuVAE's purification loses its points: the class choice, the reconstruction, or the sampling.

For clean images and gray-box FGSM, BIM-40 and PGD-40 examples (eps 0.3,
crafted on classifier A) of the `eval` (or `validation`) split, with the detector off
(purification alone, the paper's "PuVAE" column), for posterior sampling on
and off (the posterior mean), it measures:

- ``purified``: classifier A on the chosen reconstruction (the shipped figure);
- ``choice_is_true_class``: the min-RMSE reconstruction is the one conditioned on the true label;
- ``oracle``: classifier A on the reconstruction conditioned on the true label
  (what a perfect class choice would give);
- ``agrees_with_choice``: classifier A's label on the chosen reconstruction is the class it was
  conditioned on (the CE term's job);
- ``rmse_true`` and ``rmse_chosen``: mean RMSE of those two reconstructions to the input.

The gap ``oracle - purified`` is what the class choice costs; ``1 - oracle``
what the reconstruction itself costs. Prints JSON and writes decompose.json.

    python benchmarks/puvae_decompose.py --dataset=mnist --n=1000 --output_dir=saved_models/puvae_mnist/reports/decompose
"""

import json
import os

from absl import app, flags

flags.DEFINE_string("dataset", "mnist", "mnist or fmnist.")
flags.DEFINE_integer("n", 1000, "Images of --split (drawn by --seed).")
flags.DEFINE_string("split", "eval", "eval, or validation to choose inference settings without touching test images.")
flags.DEFINE_float("eps", 0.3, "Linf budget.")
flags.DEFINE_integer("seed", 0, "Image sampling, attack and purifier seed.")
flags.DEFINE_string("output_dir", None, "Where to write decompose.json.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tfdefense
    from tfdefense.evaluation import attacks, harness
    from tfdefense.zoo import cards, registry
    from tfdefense.families.puvae.analysis import decompose

    short = "fmnist" if FLAGS.dataset in ("fmnist", "fashion_mnist") else "mnist"
    name = f"puvae_{short}"
    x, y = harness.sample(registry.get_entry(name)["metadata"]["dataset"], FLAGS.n, FLAGS.seed, FLAGS.split)
    classifier = tfdefense.load(name).classifier
    inputs = {"clean": x, "fgsm": attacks.fgsm(classifier, x, y, eps=FLAGS.eps),
              "bim": attacks.bim(classifier, x, y, eps=FLAGS.eps),
              "pgd": attacks.pgd(classifier, x, y, eps=FLAGS.eps, seed=FLAGS.seed)}
    result = {"model": name, "n": int(len(x)), "eps": FLAGS.eps, "seed": FLAGS.seed, "split": FLAGS.split, "rows": []}
    for scale in (1.0, 0.0):
        purifier = tfdefense.load(name, sampling_scale=scale, threshold=None).purifier
        for kind, images in inputs.items():
            row = {"input": kind, "sampling_scale": scale, **decompose(purifier, classifier, images, y, FLAGS.seed)}
            print(json.dumps(row), flush=True)
            result["rows"].append(row)
    print(json.dumps(result, indent=2))
    if FLAGS.output_dir:
        os.makedirs(FLAGS.output_dir, exist_ok=True)
        cards.write_json(os.path.join(FLAGS.output_dir, "decompose.json"), result)


if __name__ == "__main__":
    app.run(main)
