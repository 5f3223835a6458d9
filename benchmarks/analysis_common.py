"""What the per-model analysis benchmarks share (aegan_decompose.py, projection_check.py):
their flags, the images and reader classifiers they start from, and how a report is
stored and put into the model card's "Analysis"."""

import os

from absl import app, flags


def define_flags(name, n, report):
    """The common flags; ``name`` and ``n`` are the defaults, ``report`` the report's file stem."""
    flags.DEFINE_string("name", name, "The registered model to analyse.")
    flags.DEFINE_string("source", None, "Folder of exported weights to analyse (default: the published ones).")
    flags.DEFINE_integer("n", n, "Images of --split (drawn by --seed).")
    flags.DEFINE_string("split", "dev", "dev, validation or eval.")
    flags.DEFINE_float("eps", 0.3, "Linf budget.")
    flags.DEFINE_integer("seed", 0, "Image sampling, attack and purifier seed.")
    flags.DEFINE_string("output_dir", None, f"Where to write {report}.json and {report}.md.")
    flags.DEFINE_boolean("update_card", False, "Put the table into the model card (its folder: --source or the "
                         "published one); --output_dir must be inside that folder.")


def start():
    """Checks the flags; returns the images, their labels and classifiers B and C of the
    model's dataset (readers trained apart from the protected classifier A)."""
    FLAGS = flags.FLAGS
    if FLAGS.update_card and not FLAGS.output_dir:
        raise app.UsageError("--update_card needs --output_dir inside the card's folder (its reports/).")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tfdefense
    from tfdefense.evaluation import harness
    from tfdefense.zoo import registry

    entry = registry.get_entry(FLAGS.name)
    short = entry["inference"]["classifier"].rsplit("_", 1)[-1]
    x, y = harness.sample(entry["metadata"]["dataset"], FLAGS.n, FLAGS.seed, FLAGS.split)
    readers = [tfdefense.load(f"classifier_{arch}_{short}").classifier for arch in ("b", "c")]
    return x, y, readers


def finish(result, report, table, title, card_item):
    """Writes ``report``.json (``result``) and ``report``.md (``table``) to --output_dir and,
    with --update_card, ``card_item(result, path of the json from the card's folder)`` as the
    card's analysis ``title``."""
    FLAGS = flags.FLAGS
    from tfdefense.zoo import cards, store

    if FLAGS.output_dir:
        os.makedirs(FLAGS.output_dir, exist_ok=True)
        cards.write_json(os.path.join(FLAGS.output_dir, f"{report}.json"), result)
        cards.write_text(os.path.join(FLAGS.output_dir, f"{report}.md"), table + "\n")
    if FLAGS.update_card:
        folder = store.card_folder(FLAGS.name, FLAGS.source)
        path = os.path.relpath(os.path.join(FLAGS.output_dir, f"{report}.json"), folder)
        cards.update_card(folder, lambda card: card.setdefault("analysis", {}).__setitem__(title, card_item(result, path)))
