"""Where AE-GAN+rs loses its gray-box points: detector, G(F(x)), the search, or classifier A.

For clean images, gray-box FGSM and PGD-40 examples (eps 0.3, crafted on
classifier A) and half-masked images (Table 3's H.M.) it prints, per input kind (`tfdefense.aegan.analysis.decompose`):
the pipeline as shipped, the share the detector flags, classifier A on
G(F(x)) with no search, on the L-step search at each step size, and whether a
wrong G(F(x)) label is the reconstruction's fault (classifiers B and C are wrong
too) or A's. Run it on `validation` or `dev` to choose settings, on `eval` to
report. Prints a JSON line per input kind and writes decompose.json and decompose.md.

    python benchmarks/aegan_decompose.py --name=aegan_mnist --split=dev --n=500 \\
        --output_dir=saved_models/aegan_mnist/reports/decompose
"""

import json

from absl import app, flags

import analysis_common

analysis_common.define_flags("aegan_mnist", 500, "decompose")
flags.DEFINE_list("step_sizes", ["0.001", "0.01", "0.1"], "Search step sizes to measure.")
flags.DEFINE_list("inputs", ["clean", "fgsm", "pgd", "half_mask"], "Input kinds (half_mask: Table 3's corruption).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    x, y, readers = analysis_common.start()
    import tfdefense
    from tfdefense.evaluation import attacks
    from tfdefense.families.aegan.analysis import card_analysis, decompose, markdown_table

    model = tfdefense.load(FLAGS.name, FLAGS.source)
    classifier = model.classifier
    searches = {f"step {s}": tfdefense.load(FLAGS.name, FLAGS.source, step_size=float(s)).purifier
                for s in FLAGS.step_sizes}
    make = {"clean": lambda: x, "fgsm": lambda: attacks.fgsm(classifier, x, y, eps=FLAGS.eps),
            "pgd": lambda: attacks.pgd(classifier, x, y, eps=FLAGS.eps, seed=FLAGS.seed),
            "half_mask": lambda: attacks.half_mask(classifier, x, y)}
    result = {"model": FLAGS.name, "source": FLAGS.source or "published", "n": int(len(x)), "eps": FLAGS.eps,
              "seed": FLAGS.seed, "split": FLAGS.split, "steps": model.purifier.steps,
              "shipped_step_size": model.purifier.step_size, "rows": []}
    for kind in FLAGS.inputs:
        images = make[kind]()
        row = {"input": kind, **decompose(model, classifier, images, y, searches=searches, readers=readers,
                                          clean=None if kind == "clean" else x, seed=FLAGS.seed)}
        print(json.dumps(row), flush=True)
        result["rows"].append(row)
    analysis_common.finish(result, "decompose", markdown_table(result), "gray-box decomposition", card_analysis)


if __name__ == "__main__":
    app.run(main)
