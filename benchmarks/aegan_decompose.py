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
import os

from absl import app, flags

flags.DEFINE_string("name", "aegan_mnist", "A latent-search entry with an encoder (aegan_mnist, aegan_fmnist).")
flags.DEFINE_string("source", None, "Folder of exported weights to analyse (default: the published ones).")
flags.DEFINE_integer("n", 500, "Images of --split (drawn by --seed).")
flags.DEFINE_string("split", "dev", "dev, validation or eval.")
flags.DEFINE_float("eps", 0.3, "Linf budget.")
flags.DEFINE_list("step_sizes", ["0.001", "0.01", "0.1"], "Search step sizes to measure.")
flags.DEFINE_list("inputs", ["clean", "fgsm", "pgd", "half_mask"], "Input kinds (half_mask: Table 3's corruption).")
flags.DEFINE_integer("seed", 0, "Image sampling, attack and purifier seed.")
flags.DEFINE_string("output_dir", None, "Where to write decompose.json and decompose.md.")
flags.DEFINE_boolean("update_card", False, "Put the table into the model card (its folder: --source or the "
                     "published one); --output_dir must be inside that folder.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if FLAGS.update_card and not FLAGS.output_dir:
        raise app.UsageError("--update_card needs --output_dir inside the card's folder (its reports/).")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tfdefense
    from tfdefense import attacks, cards, harness, registry
    from tfdefense.aegan.analysis import card_analysis, decompose, markdown_table

    entry = registry.get_entry(FLAGS.name)
    short = entry["inference"]["classifier"].rsplit("_", 1)[-1]
    x, y = harness.sample(entry["metadata"]["dataset"], FLAGS.n, FLAGS.seed, FLAGS.split)
    model = tfdefense.load(FLAGS.name, FLAGS.source)
    classifier = model.classifier
    readers = [tfdefense.load(f"classifier_{arch}_{short}").classifier for arch in ("b", "c")]
    searches = {f"step {s}": tfdefense.load(FLAGS.name, FLAGS.source, step_size=float(s)).purifier for s in FLAGS.step_sizes}
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
    if FLAGS.output_dir:
        os.makedirs(FLAGS.output_dir, exist_ok=True)
        cards.write_json(os.path.join(FLAGS.output_dir, "decompose.json"), result)
        with open(os.path.join(FLAGS.output_dir, "decompose.md"), "w") as f:
            f.write(markdown_table(result) + "\n")
    if FLAGS.update_card:
        folder = FLAGS.source or registry.weights_dir(FLAGS.name)
        card = cards.read_card(folder, verify=True)
        report = os.path.relpath(os.path.join(FLAGS.output_dir, "decompose.json"), folder)
        card.setdefault("analysis", {})["gray-box decomposition"] = card_analysis(result, report)
        cards.write_card(folder, card)


if __name__ == "__main__":
    app.run(main)
