"""The `tfdefense` command: thin mains over library functions.

Usage:
    tfdefense list
    tfdefense train <name> [--workdir=DIR] [--resume] [--warm_start] [--init_from=NAME] [--epochs=N] [--publish]
    tfdefense evaluate                                       (aegan_mnist: clean + gray-box FGSM, PGD; n=1000)
    tfdefense evaluate <name> [--split=test] [--n=N]         (clean accuracy)
    tfdefense evaluate <name> --attacks=fgsm,pgd,cw --threat=gray,white,black --n=1000 --eps=0.3
              --seed=0 --output_dir=DIR [--sweep=30] [--sanity] [--update-card] [--source=DIR]
    tfdefense export <name> <dir> [--version=N]
    tfdefense calibrate <name> [--source=DIR] [--n=500] [--step_sizes=0.001,0.01,0.1]

Inference settings of evaluate and export: --set=key=value (JSON
value), checked against the settings the model's family declares, e.g.
--set=steps=30 --set=threshold=null; --steps, --restarts and --threshold are
shorthands for the latent-search settings.
    tfdefense card <name> --reports=DIR1/report.json,DIR2/report.json   (merge reports into the card)
    tfdefense leaderboard [--output=docs/leaderboard.md]                 (every pretrained defense side by side)
"""

import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training folder (default: ./runs/<name>).")
flags.DEFINE_boolean("resume", False, "Continue the checkpoint in --workdir.")
flags.DEFINE_boolean("warm_start", False, "train: with no checkpoint in --workdir, continue the schedule from the "
                     "published weights (fresh optimizer state), e.g. on a machine that lost its checkpoint.")
flags.DEFINE_string("init_from", None, "train: start from another published entry's weights (same family and "
                    "network), e.g. PGD training from the FGSM-trained classifier; 'none' starts from scratch.")
flags.DEFINE_boolean("publish", False, "Copy the trained weights and card to saved_models/<name>/.")
flags.DEFINE_integer("epochs", None, "Override the number of epochs.")
flags.DEFINE_integer("batch_size", None, "Override the batch size.")
flags.DEFINE_float("learning_rate", None, "train: override the learning rate (e.g. a smaller one to continue with "
                   "--init_from).")
flags.DEFINE_integer("steps_per_epoch", None, "Limit steps per epoch (smoke runs).")
flags.DEFINE_integer("seed", None, "Seed: overrides the training seed; for evaluate, image sampling and attacks (default 0).")
flags.DEFINE_multi_string("set", [], "key=value (JSON value). train: a model setting, e.g. "
                          "--set=adversarial=false for the plain-AE ablation; evaluate/export: an "
                          "inference setting the family declares, e.g. --set=steps=30 or --set=threshold=null.")
flags.DEFINE_string("split", None, "Split for `evaluate` (default: test for clean accuracy, eval for attacks).")
flags.DEFINE_integer("n", None, "Images to evaluate (clean: the first n; attacks: n drawn by --seed, default 1000).")
flags.DEFINE_list("attacks", [], "Attacks for `evaluate`: fgsm,bim,pgd,pgd_restarts,mim,cw,deepfool,deepfool_linf,spsa, "
                  "autoattack,square,jsma,cw_linf (ART), half_mask,gaussian_noise (corruptions).")
flags.DEFINE_list("threat", ["gray"], "Threat models: gray,white,black.")
flags.DEFINE_float("eps", 0.3, "Linf budget of the Linf attacks.")
flags.DEFINE_string("output_dir", None, "Where `evaluate` writes report.json, report.md and PNG figures.")
flags.DEFINE_string("params", "{}", 'Per-attack settings as JSON, e.g. \'{"pgd": {"nb_iter": 100}, "cw": {"n": 200}}\'.')
flags.DEFINE_string("white_box", "{}", 'BPDA/EOT settings of --threat=white as JSON, e.g. \'{"bpda": "surrogate", "eot": 8}\' '
                    '(bpda "surrogate" also applies to a differentiable purifier that declares a smooth surrogate: '
                    'PuVAE\'s soft choice of class).')
flags.DEFINE_string("black_box", "{}", 'Substitute settings as JSON, e.g. \'{"arch": "c", "rounds": 6}\'.')
flags.DEFINE_integer("sweep", 0, "Number of eps values in --sweep_range for accuracy-vs-eps curves (0: none).")
flags.DEFINE_integer("sweep_n", 200, "Images for the eps sweep and the detector curves.")
flags.DEFINE_list("sweep_range", ["0", "0.4"], "Smallest and largest eps of the --sweep (e.g. 0.01,0.3).")
flags.DEFINE_list("sweep_attacks", ["fgsm", "pgd"], "Gray-box attacks of the --sweep.")
flags.DEFINE_boolean("sanity", False, "Run the built-in sanity checks.")
flags.DEFINE_boolean("update_card", False, "Write the measured numbers into the model card (--update-card).")
flags.DEFINE_list("reports", [], "report.json files for `card`.")
flags.DEFINE_string("output", "docs/leaderboard.md", "Where `leaderboard` writes its page (and leaderboard.png).")
flags.DEFINE_integer("steps", None, "Override the latent search steps L.")
flags.DEFINE_integer("restarts", None, "Override the random restarts R.")
flags.DEFINE_float("threshold", None, "Override the detector threshold.")
flags.DEFINE_integer("version", None, "Export version (default: the next free one).")
flags.DEFINE_list("step_sizes", [], "Candidate search step sizes for `calibrate` (default: calibration.STEP_SIZES).")
flags.DEFINE_list("tune_attacks", [], "Gray-box attacks whose worst case `calibrate` maximises (default: fgsm,pgd).")
flags.DEFINE_string("source", None, "Folder with exported weights to calibrate or evaluate, e.g. a training run's "
                    "export/ (default: saved_models/<name>).")

COMMANDS = ("list", "train", "evaluate", "export", "calibrate", "card", "leaderboard")
# What `tfdefense evaluate` runs without arguments: the flagship defense, clean
# and under gray-box FGSM and PGD (eps 0.3) on 1000 test images, seed 0.
DEFAULT_MODEL = "aegan_mnist"
DEFAULT_ATTACKS = ("fgsm", "pgd")


def _usage(msg):
    raise app.UsageError(f"{msg}\n{__doc__}")


def cmd_list(args):
    import tfdefense
    from tfdefense import cards, registry

    print(f"{'name':30s} {'family':20s} {'status':16s} measured")
    for name in tfdefense.list_models():
        folder = registry.weights_dir(name)
        status, measured = "not trained", ""
        if os.path.isfile(os.path.join(folder, cards.CARD)):
            card = cards.read_card(folder, verify=False)
            status = "{}/{} epochs".format(*cards.epochs_trained(card.get("training", {})))
            m = card.get("measured", {})
            clean = m.get("clean_accuracy_defended") or m.get("clean_accuracy")
            measured = f"clean accuracy {clean['value']:.4f} ({clean.get('split', '')})" if clean else ""
        print(f"{name:30s} {registry.get_entry(name)['family']:20s} {status:16s} {measured}")


def cmd_train(args):
    if len(args) != 1:
        _usage("train takes one model name.")
    from tfdefense import registry, training

    name = args[0]
    overrides = {k: getattr(FLAGS, k) for k in ("epochs", "batch_size", "learning_rate", "steps_per_epoch", "seed")
                 if getattr(FLAGS, k) is not None}
    if FLAGS.init_from is not None:
        overrides["init_from"] = None if FLAGS.init_from.lower() == "none" else FLAGS.init_from
    entry = registry.get_entry(name)
    entry["config"].update(_parse_settings(FLAGS.set, known=entry["config"]))
    if FLAGS.set and FLAGS.publish:
        raise ValueError("--publish would replace the registered weights with a variant; "
                         "train variants (--set) without --publish.")
    workdir = FLAGS.workdir or os.path.join("runs", name)
    card = training.train_and_evaluate(entry, workdir, resume=FLAGS.resume, warm_start=FLAGS.warm_start,
                                       overrides=overrides,
                                       publish_dir=registry.models_dir() if FLAGS.publish else None)
    print(json.dumps(card["measured"], indent=2))


def _parse_settings(pairs, known=None):
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or (known is not None and key not in known):
            choices = f" with key in {sorted(known)}" if known is not None else ""
            raise ValueError(f"--set expects key=value{choices}; got {pair!r}.")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def _inference_overrides():
    """--set pairs plus the latent-search shorthands; `tfdefense.load` checks them against the family."""
    overrides = {k: getattr(FLAGS, k) for k in ("steps", "restarts", "threshold") if getattr(FLAGS, k) is not None}
    overrides.update(_parse_settings(FLAGS.set))
    return overrides


def cmd_evaluate(args):
    if len(args) > 1:
        _usage("evaluate takes one model name.")
    import tfdefense
    from tfdefense import datasets, evaluation, harness, registry

    name = args[0] if args else DEFAULT_MODEL
    entry = registry.get_entry(name)
    overrides = _inference_overrides()
    attacks = tuple(FLAGS.attacks) or (DEFAULT_ATTACKS if not args else ())
    if not attacks:
        model = tfdefense.load(name, FLAGS.source, **overrides)
        split = FLAGS.split or "test"
        x, y = datasets.load(entry["metadata"]["dataset"], split)
        if FLAGS.n is not None:
            x, y = x[:FLAGS.n], y[:FLAGS.n]
        acc = evaluation.accuracy(model, x, y, desc=f"{name} clean")
        print(json.dumps({"model": name, "split": split, "n": int(len(x)), "clean_accuracy": round(acc, 4)},
                         indent=2))
        return
    report = harness.run(name, attacks=attacks, threats=tuple(FLAGS.threat), n=FLAGS.n or 1000,
                         eps=FLAGS.eps, seed=FLAGS.seed or 0, params=json.loads(FLAGS.params),
                         black_box=json.loads(FLAGS.black_box), white_box=json.loads(FLAGS.white_box),
                         output_dir=FLAGS.output_dir, sweep=FLAGS.sweep, sweep_n=FLAGS.sweep_n,
                         sweep_range=[float(v) for v in FLAGS.sweep_range], sweep_attacks=FLAGS.sweep_attacks,
                         run_sanity=FLAGS.sanity, update_card=FLAGS.update_card, split=FLAGS.split or "eval",
                         source=FLAGS.source, **overrides)
    print(report.to_markdown())


def cmd_export(args):
    if len(args) != 2:
        _usage("export takes a model name and a folder.")
    import tfdefense
    from tfdefense import export

    path = export.export(tfdefense.load(args[0], **_inference_overrides()), args[1], args[0], version=FLAGS.version)
    print(path)


def cmd_calibrate(args):
    if len(args) != 1:
        _usage("calibrate takes one model name.")
    from tfdefense import calibration

    options = {}
    if FLAGS.n is not None:
        options["n"] = FLAGS.n
    if FLAGS.step_sizes:
        try:
            options["step_sizes"] = tuple(float(s) for s in FLAGS.step_sizes)
        except ValueError:
            _usage(f"--step_sizes must be numbers, got {','.join(FLAGS.step_sizes)}.")
    if FLAGS.tune_attacks:
        options["attacks_used"] = tuple(FLAGS.tune_attacks)
    card = calibration.calibrate(args[0], FLAGS.source, **options)
    print(json.dumps({"inference": card["inference"], "calibration": card["calibration"]}, indent=2))


def cmd_card(args):
    if len(args) != 1 or not FLAGS.reports:
        _usage("card takes one model name and --reports.")
    from tfdefense import evaluation, harness

    for path in FLAGS.reports:
        card = harness.write_to_card(args[0], evaluation.Report.read(path))
    print(json.dumps(card["measured"], indent=2))


def cmd_leaderboard(args):
    if args:
        _usage("leaderboard takes no model name.")
    from tfdefense import leaderboard

    table = leaderboard.write(FLAGS.output)
    print(f"{FLAGS.output}: {len(table)} models")


def main(argv):
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices are not for end users
    args = argv[1:]
    if not args or args[0] not in COMMANDS:
        _usage(f"Choose a command: {', '.join(COMMANDS)}.")
    from tfdefense.registry import UnknownModelError, WeightsError
    from tfdefense.datasets import DatasetError

    try:
        globals()[f"cmd_{args[0]}"](args[1:])
    except (UnknownModelError, WeightsError, DatasetError, FileExistsError, ValueError, TypeError) as e:
        print(f"tfdefense {args[0]}: error: {e}", file=sys.stderr)
        return 1
    return 0


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The issue tracker and README spell it --update-card; absl flags use underscores.
    sys.argv = [a.replace("--update-card", "--update_card") for a in sys.argv]
    app.run(main)
