"""The `tfdefense` command: thin mains over library functions.

Usage:
    tfdefense list
    tfdefense train <name> [--workdir=DIR] [--resume] [--epochs=N] [--publish]
    tfdefense evaluate [<name>] [--split=test] [--n=N]
    tfdefense export <name> <dir> [--version=N]
    tfdefense calibrate <name> [--source=DIR]
"""

import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training folder (default: ./runs/<name>).")
flags.DEFINE_boolean("resume", False, "Continue the checkpoint in --workdir.")
flags.DEFINE_boolean("publish", False, "Copy the trained weights and card to saved_models/<name>/.")
flags.DEFINE_integer("epochs", None, "Override the number of epochs.")
flags.DEFINE_integer("batch_size", None, "Override the batch size.")
flags.DEFINE_integer("steps_per_epoch", None, "Limit steps per epoch (smoke runs).")
flags.DEFINE_integer("seed", None, "Override the training seed.")
flags.DEFINE_multi_string("set", [], "Model setting key=value (JSON value), e.g. "
                          "--set=adversarial=false for the plain-AE ablation.")
flags.DEFINE_string("split", "test", "Split for `evaluate`.")
flags.DEFINE_integer("n", None, "Evaluate on the first n examples of the split.")
flags.DEFINE_integer("version", None, "Export version (default: the next free one).")
flags.DEFINE_string("source", None, "Folder with exported weights to calibrate (default: saved_models/<name>).")

COMMANDS = ("list", "train", "evaluate", "export", "calibrate")
DEFAULT_MODEL = "classifier_a_mnist"  # what `tfdefense evaluate` runs without a name


def _usage(msg):
    raise app.UsageError(f"{msg}\n{__doc__}")


def cmd_list(args):
    import tfdefense
    from tfdefense import registry

    for name in tfdefense.list_models():
        folder = registry.weights_dir(name)
        ready = "pretrained" if os.path.isfile(os.path.join(folder, registry.CARD)) else "not trained"
        print(f"{name:28s} {registry.get_entry(name)['family']:12s} {ready}")


def cmd_train(args):
    if len(args) != 1:
        _usage("train takes one model name.")
    from tfdefense import registry, training

    name = args[0]
    overrides = {k: getattr(FLAGS, k) for k in ("epochs", "batch_size", "steps_per_epoch", "seed")
                 if getattr(FLAGS, k) is not None}
    entry = registry.get_entry(name)
    entry["config"].update(_parse_settings(FLAGS.set, entry["config"]))
    if FLAGS.set and FLAGS.publish:
        raise ValueError("--publish would replace the registered weights with a variant; "
                         "train variants (--set) without --publish.")
    workdir = FLAGS.workdir or os.path.join("runs", name)
    card = training.train_and_evaluate(entry, workdir, resume=FLAGS.resume, overrides=overrides,
                                       publish_dir=registry.models_dir() if FLAGS.publish else None)
    print(json.dumps(card["measured"], indent=2))


def _parse_settings(pairs, known):
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise ValueError(f"--set expects key=value with key in {sorted(known)}; got {pair!r}.")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def cmd_evaluate(args):
    if len(args) > 1:
        _usage("evaluate takes one model name.")
    import tfdefense
    from tfdefense import datasets, evaluation, registry

    name = args[0] if args else DEFAULT_MODEL
    entry = registry.get_entry(name)
    model = tfdefense.load(name)
    x, y = datasets.load(entry["metadata"]["dataset"], FLAGS.split)
    if FLAGS.n is not None:
        x, y = x[:FLAGS.n], y[:FLAGS.n]
    acc = evaluation.accuracy(model, x, y, desc=f"{name} clean")
    print(json.dumps({"model": name, "split": FLAGS.split, "n": int(len(x)),
                      "clean_accuracy": round(acc, 4)}, indent=2))


def cmd_export(args):
    if len(args) != 2:
        _usage("export takes a model name and a folder.")
    import tfdefense
    from tfdefense import export

    path = export.export(tfdefense.load(args[0]), args[1], args[0], version=FLAGS.version)
    print(path)


def cmd_calibrate(args):
    if len(args) != 1:
        _usage("calibrate takes one model name.")
    from tfdefense.aegan import calibrate

    card = calibrate.calibrate(args[0], FLAGS.source)
    print(json.dumps({"inference": card["inference"], "calibration": card["calibration"]}, indent=2))


def main(argv):
    args = argv[1:]
    if not args or args[0] not in COMMANDS:
        _usage(f"Choose a command: {', '.join(COMMANDS)}.")
    from tfdefense.registry import UnknownModelError, WeightsError
    from tfdefense.datasets import DatasetError

    try:
        globals()[f"cmd_{args[0]}"](args[1:])
    except (UnknownModelError, WeightsError, DatasetError, FileExistsError, ValueError) as e:
        print(f"tfdefense {args[0]}: error: {e}", file=sys.stderr)
        return 1
    return 0


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
