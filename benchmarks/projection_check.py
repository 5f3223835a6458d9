"""Why a latent-search defense gets gray-box inputs wrong: the search, the range, or the classifier.

For gray-box FGSM and PGD-40 examples (crafted on classifier A) it purifies
both the adversarial and the clean images and splits every wrong label by
cause (`tfdefense.evaluation.analysis.projection_check`): the search fell
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

from absl import app, flags

import analysis_common

analysis_common.define_flags("defensegan_mnist", 300, "projection")
flags.DEFINE_float("step_size", None, "Search step size to analyse (default: the shipped one).")
flags.DEFINE_list("attacks", ["fgsm", "pgd"], "Gray-box attacks on classifier A.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    x, y, readers = analysis_common.start()
    import tfdefense
    from tfdefense.evaluation import attacks
    from tfdefense.evaluation.analysis import card_analysis, clean_reference, markdown_table, projection_check

    settings = {} if FLAGS.step_size is None else {"step_size": FLAGS.step_size}
    model = tfdefense.load(FLAGS.name, FLAGS.source, **settings)
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
    title = "why purified inputs are read wrong" + (f" (step {FLAGS.step_size})" if settings else "")
    analysis_common.finish(result, "projection", markdown_table(result["rows"]), title, card_analysis)


if __name__ == "__main__":
    app.run(main)
