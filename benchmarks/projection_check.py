"""Why a latent-search defense gets gray-box inputs wrong: the search, the range, or the classifier.

For gray-box FGSM and PGD-40 examples (crafted on classifier A) it purifies
both the adversarial and the clean images and splits every wrong label by
cause (`tfdefense.purification.analysis.projection_check`): the search fell
short (a right-class point of the range, the clean image's purification or the
search started from its code, is nearer to the adversarial input than what the
search found), the projection is of another class (what the search found is
nearer), or no right-class point is known; classifiers B and C read the wrong
purified images. Prints a JSON line
per attack and writes projection.json and projection.md.

    python benchmarks/projection_check.py --name=defensegan_mnist --split=dev --n=300 \\
        --output_dir=saved_models/defensegan_mnist/reports/projection --update_card
"""

import json
import os

from absl import app, flags

flags.DEFINE_string("name", "defensegan_mnist", "A purifying entry (defensegan_*, aegan_*, ...).")
flags.DEFINE_string("source", None, "Folder of exported weights to analyse (default: the published ones).")
flags.DEFINE_integer("n", 300, "Images of --split (drawn by --seed).")
flags.DEFINE_string("split", "dev", "dev, validation or eval.")
flags.DEFINE_float("eps", 0.3, "Linf budget.")
flags.DEFINE_float("step_size", None, "Search step size to analyse (default: the shipped one).")
flags.DEFINE_list("attacks", ["fgsm", "pgd"], "Gray-box attacks on classifier A.")
flags.DEFINE_integer("seed", 0, "Image sampling, attack and purifier seed.")
flags.DEFINE_string("output_dir", None, "Where to write projection.json and projection.md.")
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
    from tfdefense.purification.analysis import card_analysis, clean_reference, markdown_table, projection_check

    entry = registry.get_entry(FLAGS.name)
    short = entry["inference"]["classifier"].rsplit("_", 1)[-1]
    x, y = harness.sample(entry["metadata"]["dataset"], FLAGS.n, FLAGS.seed, FLAGS.split)
    settings = {} if FLAGS.step_size is None else {"step_size": FLAGS.step_size}
    model = tfdefense.load(FLAGS.name, FLAGS.source, **settings)
    readers = [tfdefense.load(f"classifier_{arch}_{short}").classifier for arch in ("b", "c")]
    make = {"fgsm": lambda: attacks.fgsm(model.classifier, x, y, eps=FLAGS.eps),
            "pgd": lambda: attacks.pgd(model.classifier, x, y, eps=FLAGS.eps, seed=FLAGS.seed)}
    unknown = sorted(set(FLAGS.attacks) - set(make))
    if unknown:
        raise app.UsageError(f"unknown attacks {unknown}; choose from {sorted(make)}.")
    reference = clean_reference(model, x, seed=FLAGS.seed)
    result = {"model": FLAGS.name, "source": FLAGS.source or "published", "n": int(len(x)), "eps": FLAGS.eps,
              "seed": FLAGS.seed, "split": FLAGS.split, "settings": settings or "shipped", "rows": []}
    for name in FLAGS.attacks:
        row = {"input": name, **projection_check(model, make[name](), y, x, readers=readers, seed=FLAGS.seed,
                                                 reference=reference)}
        print(json.dumps(row), flush=True)
        result["rows"].append(row)
    if FLAGS.output_dir:
        os.makedirs(FLAGS.output_dir, exist_ok=True)
        cards.write_json(os.path.join(FLAGS.output_dir, "projection.json"), result)
        cards.write_text(os.path.join(FLAGS.output_dir, "projection.md"), markdown_table(result["rows"]) + "\n")
    if FLAGS.update_card:
        folder = FLAGS.source or registry.weights_dir(FLAGS.name)
        card = cards.read_card(folder, verify=True)
        report = os.path.relpath(os.path.join(FLAGS.output_dir, "projection.json"), folder)
        title = "why purified inputs are read wrong" + (f" (step {FLAGS.step_size})" if settings else "")
        card.setdefault("analysis", {})[title] = card_analysis(result, report)
        cards.write_card(folder, card)


if __name__ == "__main__":
    app.run(main)
