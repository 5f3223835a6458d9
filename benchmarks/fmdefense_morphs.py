"""What FM-Defense's morph count buys: images/s and detection versus N (morphs per code).

For each N, the detector is calibrated on clean validation images as
`tfdefense calibrate` does (normal code ranges and active codes, the unified
resistance threshold, theta_d at the 90% fractile of flagged clean
distances), then on test images it measures the false-positive rate (clean
images flagged), the true-positive rate on gray-box FGSM (eps 0.3) examples of
classifier A, the fraction of each rejected, and the pipeline's images/s.
Prints JSON rows as they are measured and writes morphs.json and a PNG.

    python benchmarks/fmdefense_morphs.py --dataset=mnist --morphs=10,25,50,100 --n_val=500 --n=300 \
        --output_dir=saved_models/fmdefense_mnist/reports/morphs
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_string("dataset", "mnist", "mnist or fmnist.")
flags.DEFINE_list("morphs", ["10", "25", "50", "100"], "Morph counts N to measure.")
flags.DEFINE_integer("n_val", 500, "Clean validation images for each calibration.")
flags.DEFINE_integer("n", 300, "Test images (clean and FGSM) per measurement.")
flags.DEFINE_float("eps", 0.3, "FGSM budget.")
flags.DEFINE_integer("seed", 0, "Image sampling and morph seed.")
flags.DEFINE_string("output_dir", None, "Where to write morphs.json and morphs.png.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    import tfdefense
    from tfdefense import datasets
    from tfdefense.evaluation import attacks, harness
    from tfdefense.families.fmdefense import tune

    short = "fmnist" if FLAGS.dataset in ("fmnist", "fashion_mnist") else "mnist"
    name, dataset = f"fmdefense_{short}", ("fashion_mnist" if short == "fmnist" else "mnist")
    x_val, y_val = datasets.load(dataset, "validation")
    index = np.random.default_rng(FLAGS.seed).choice(len(x_val), FLAGS.n_val, replace=False)
    x, y = harness.sample(dataset, FLAGS.n, FLAGS.seed)
    base = tfdefense.load(name)
    x_adv = attacks.fgsm(base.classifier, x, y, eps=FLAGS.eps)
    rows = []
    for morphs in [int(m) for m in FLAGS.morphs]:
        settings, table = tune(lambda **s: tfdefense.load(name, threshold=None, morphs=morphs, **s),
                               x_val[index], y_val[index], seed=FLAGS.seed)
        thresholds = settings.pop("thresholds")
        model = tfdefense.load(name, morphs=morphs, thresholds=thresholds, **settings)
        start = time.perf_counter()
        clean = model.defend(x, seed=FLAGS.seed)
        seconds = time.perf_counter() - start
        adv = model.defend(x_adv, seed=FLAGS.seed)
        row = {"morphs": morphs, "n": int(len(x)), "n_val": FLAGS.n_val, "images_per_s": round(len(x) / seconds, 2),
               "false_positive_rate": round(float(np.mean(clean["is_adversarial"])), 4),
               "clean_rejected": round(float(np.mean(clean["rejected"])), 4),
               "clean_accuracy": round(float(np.mean(clean["label"] == y)), 4),
               "fgsm_true_positive_rate": round(float(np.mean(adv["is_adversarial"])), 4),
               "fgsm_rejected": round(float(np.mean(adv["rejected"])), 4),
               "fgsm_accuracy": round(float(np.mean(adv["label"] == y)), 4),
               "theta_d": thresholds["morph"], "validation_flagged": table["clean_flagged"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {"model": name, "dataset": dataset, "eps": FLAGS.eps, "seed": FLAGS.seed, "rows": rows}
    print(json.dumps(result, indent=2))
    if FLAGS.output_dir:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(FLAGS.output_dir, exist_ok=True)
        with open(os.path.join(FLAGS.output_dir, "morphs.json"), "w") as f:
            json.dump(result, f, indent=2)
        n = [r["morphs"] for r in rows]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(n, [r["fgsm_true_positive_rate"] for r in rows], "o-", label="FGSM flagged (TPR)")
        ax.plot(n, [r["false_positive_rate"] for r in rows], "s-", label="clean flagged (FPR)")
        ax.set_xlabel("morphs per code (N)")
        ax.set_ylabel("rate")
        ax.set_title(f"{name}: detection vs morph count")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(FLAGS.output_dir, "morphs.png"), dpi=120)


if __name__ == "__main__":
    app.run(main)
