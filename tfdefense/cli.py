"""The `tfdefense` command: each subcommand owns its flags and calls one library function.

    tfdefense list                                  the zoo: here, cached or downloadable, size, clean accuracy
    tfdefense download NAME... | --all [--to DIR]   prefetch weights (for an offline machine)
    tfdefense release DIR                           write a mirror any static file server can host
    tfdefense evaluate [NAME] [--attacks=fgsm,pgd] [--threat=gray,white,black] [--n=1000] ...
    tfdefense train NAME [--workdir=DIR] [--resume] [--publish[=DIR]] ...
    tfdefense calibrate NAME [--source=DIR] ...
    tfdefense export NAME DIR [--version=N] | --all DIR     TF Serving's layout (+ models.config)
    tfdefense bench NAME [--batch=1,128] [--policy=float32,mixed_bfloat16]   cost to serve, as JSON
    tfdefense evaluate NAME --shard=I/K --output_dir=DIR_I  |  tfdefense merge DIR_0 ... [--output_dir=DIR]
    tfdefense substitute NAME DIR                   the black-box substitute the shards share
    tfdefense card NAME --reports=A/report.json,B/report.json
    tfdefense leaderboard [--output=docs/leaderboard.md]

``tfdefense COMMAND --help`` lists a command's flags.
"""

import argparse
import json
import os
import sys

# What `tfdefense evaluate` runs without arguments: the flagship defense, clean
# and under gray-box FGSM and PGD (eps 0.3) on 1000 eval images, seed 0.
DEFAULT_MODEL = "aegan_mnist"
DEFAULT_ATTACKS = "fgsm,pgd"


def _csv(text):
    return [v for v in text.split(",") if v]


def _numbers(values, kind, flag):
    """The comma-separated ``values`` of ``flag`` as ``kind`` (int or float), or a ValueError naming the flag."""
    try:
        return [kind(v) for v in values]
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{flag} must be {what}, got {','.join(values)}.") from None


def _json(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r} ({e})") from e


def parse_settings(pairs, known=None):
    """``["key=value", ...]`` (JSON values, else strings) -> dict; keys outside ``known`` are refused."""
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


def _inference_flags(p):
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an inference setting the family declares (JSON value), e.g. --set=steps=30 "
                        "--set=threshold=null")
    p.add_argument("--steps", type=int, help="shorthand for --set=steps=N, for the families that declare it "
                                             "(latent search steps L, DiffPure's reverse sampler steps)")
    p.add_argument("--threshold", type=float, help="the detector threshold")
    p.add_argument("--classifier", help="the classifier behind the defense: an entry name or a saved Keras model "
                                        "(.keras); a final softmax is removed and its logits attacked")


def _model_flags(p, verb):
    p.add_argument("--model", metavar="DIR", help=f"{verb} the defense you trained into DIR (its export/ folder)")
    p.add_argument("--source", help=f"{verb} the weights and card in this folder (e.g. a run's export/)")


def _target(args):
    """(name, folder): a registered entry, or the defense trained into --model DIR."""
    if getattr(args, "model", None):
        from tfdefense.zoo import registry

        return registry.register_folder(args.model), args.model
    if not args.name and args.command != "evaluate":
        raise ValueError("name an entry, or pass --model=DIR for a defense you trained.")
    return args.name or DEFAULT_MODEL, args.source


def _target_and_folder(args, usage):
    """`_target` of a command taking ``NAME DIR``, or ``--model=SRC DIR`` (whose one positional is the folder)."""
    if args.model and args.name and not args.dir:
        args.name, args.dir = None, args.name
    if not args.dir:
        raise ValueError(f"{usage}: name the folder to write.")
    return _target(args)


def _inference_overrides(args):
    overrides = {k: getattr(args, k, None) for k in ("steps", "threshold", "classifier", "dtype_policy")
                 if getattr(args, k, None) is not None}
    overrides.update(parse_settings(args.set))
    return overrides


def cmd_list(args):
    import tfdefense
    from tfdefense.zoo import cards, registry, store

    print(f"{'name':34s} {'family':12s} {'weights':14s} {'size':>8s} {'trained':14s} measured")
    for name in tfdefense.list_models():
        card = store.card(name)
        status, size, trained, measured = store.status(name), store.size(card), "-", ""
        if card:
            trained = "{}/{} epochs".format(*cards.epochs_trained(card.get("training", {})))
            m = card.get("measured", {})
            clean = m.get("clean_accuracy_defended") or m.get("clean_accuracy")
            measured = f"clean {clean['value']:.3f} ({clean.get('split', '')})" if clean else ""
        size = f"{size / 2 ** 20:.1f} MB" if size else "-"
        print(f"{name:34s} {registry.get_entry(name)['family']:12s} {status:14s} {size:>8s} {trained:14s} {measured}")


def cmd_download(args):
    from tfdefense.zoo import store

    names = store.published() if args.all else args.names
    if not names:
        raise ValueError("download takes entry names or --all.")
    for folder in store.download(names, to=args.to):
        print(folder)


def cmd_release(args):
    from tfdefense.zoo import store

    index = store.release(args.dir, args.names or None)
    print(f"{args.dir}: {len(index['entries'])} entries; serve it and set TFDEFENSE_WEIGHTS_URL to its address.")


def cmd_train(args):
    from tfdefense.zoo import registry, store, training

    keys = ("epochs", "batch_size", "learning_rate", "steps_per_epoch", "validation_steps", "seed")
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if args.init_from is not None:
        overrides["init_from"] = None if args.init_from.lower() == "none" else args.init_from
    if args.data:
        if args.name not in registry.list_families():
            raise ValueError(f"--data trains a family on your data: tfdefense train FAMILY --data=...; "
                             f"{args.name!r} is not one of {', '.join(registry.list_families())}.")
        entry = registry.user_entry(args.name, args.data, classifier=args.classifier, name=args.as_name)
        entry["config"].update(parse_settings(args.set))
        entry["_command"] = "tfdefense " + " ".join(sys.argv[1:])
    else:
        if args.name in registry.list_families():
            raise ValueError(f"{args.name!r} is a family: train it on your data with --data=tfds:NAME, "
                             "--data=PATH.npz or --data=DIR (and --classifier=PATH.keras).")
        if args.classifier or args.as_name:
            raise ValueError("--classifier and --name go with --data (a family trained on your data).")
        entry = registry.get_entry(args.name)
        entry["config"].update(parse_settings(args.set, known=entry["config"]))
    if (args.set or args.data) and args.publish is True:
        raise ValueError("--publish without a folder would add a variant to the registered weights; "
                         "use --publish=DIR, or load the run's export/ with --model.")
    publish_dir = None
    if args.publish:
        publish_dir = args.publish if args.publish is not True else (
            os.environ.get("TFDEFENSE_MODELS_DIR") or store.checkout_dir())
        if not publish_dir:
            raise ValueError("--publish needs a folder outside a source checkout: --publish=DIR, "
                             "or set TFDEFENSE_MODELS_DIR (load then finds the entry there).")
    workdir = args.workdir or os.path.join("runs", entry["name"])
    card = training.train_and_evaluate(entry, workdir, resume=args.resume, warm_start=args.warm_start,
                                       overrides=overrides, publish_dir=publish_dir, strategy=args.strategy)
    print(json.dumps(card["measured"], indent=2))
    print(f"trained {entry['name']} into {os.path.join(workdir, 'export')}: "
          f"tfdefense evaluate --model={os.path.join(workdir, 'export')}", file=sys.stderr)


def cmd_evaluate(args):
    from tfdefense.evaluation import harness

    attacks = tuple(a for a in args.attacks if a != "none")
    name, source = _target(args)
    report = harness.run(name, attacks=attacks, threats=tuple(args.threat), n=args.n, eps=args.eps,
                         seed=args.seed, params=args.params, black_box=args.black_box, white_box=args.white_box,
                         output_dir=args.output_dir, sweep=args.sweep, sweep_n=args.sweep_n,
                         sweep_range=[float(v) for v in args.sweep_range], sweep_attacks=args.sweep_attacks,
                         run_sanity=args.sanity and args.sanity_n, update_card=args.update_card, split=args.split,
                         source=source, data=args.data, k_queries=args.queries, shard=args.shard,
                         substitute=args.substitute, block_size=args.block_size, **_inference_overrides(args))
    print(report.to_markdown())


def cmd_merge(args):
    from tfdefense.evaluation import harness, shards

    report = shards.merge(args.dirs, args.output_dir)
    if args.update_card:
        harness.write_to_card(report.model, report, args.source)
    print(report.to_markdown())


def cmd_substitute(args):
    from tfdefense.evaluation import harness

    name, source = _target_and_folder(args, "substitute NAME DIR (or --model=SRC DIR)")
    sub = harness.substitute_for(name, args.dir, seed=args.seed, black_box=args.black_box, source=source,
                                 data=args.data, **_inference_overrides(args))
    print(f"{args.dir}: substitute {sub.arch}, {sub.training_set_size} images, {sub.oracle_queries} oracle queries")


def cmd_export(args):
    from tfdefense.zoo import export

    if args.all:
        if args.name or args.dir or args.model:
            raise ValueError("--all DIR exports every entry: name none (use --names=a,b for a subset).")
        written = export.export_all(args.all, names=args.names or None, base_path=args.base_path)
        for name, path in written.items():
            print(f"{name}: {path}")
        print(f"{os.path.join(args.all, 'models.config')} and batching.config: serve them with\n"
              f"  docker run -p 8501:8501 -p 8500:8500 --mount type=bind,source={os.path.abspath(args.all)},"
              f"target={args.base_path} tensorflow/serving --model_config_file={args.base_path}/models.config "
              f"--enable_batching --batching_parameters_file={args.base_path}/batching.config")
        return
    name, source = _target_and_folder(args, "export NAME DIR (or --model=SRC DIR, or --all DIR)")
    model = export.load_for_serving(name, source, **_inference_overrides(args))
    print(export.export(model, args.dir, name, version=args.version))


def cmd_bench(args):
    from tfdefense.zoo import bench

    name, source = _target(args)
    if args.ops and args.no_export:
        raise ValueError("--ops profiles the exported graph; it cannot go with --no_export.")
    result = bench.run(name, source, batches=_numbers(args.batch, int, "--batch"), policies=args.policy,
                       seconds=args.seconds, exported=not args.no_export, update_card=args.update_card,
                       accuracy_n=args.accuracy_n, eps=args.eps, ops=args.ops, **_inference_overrides(args))
    print(json.dumps(result, indent=2))


def cmd_calibrate(args):
    from tfdefense.zoo import calibration

    options = {}
    if args.n is not None:
        options["n"] = args.n
    if args.fpr is not None:
        options["fpr"] = args.fpr
    if args.step_sizes:
        options["step_sizes"] = tuple(_numbers(args.step_sizes, float, "--step_sizes"))
    if args.tune_attacks:
        options["attacks_used"] = tuple(args.tune_attacks)
    if args.morph_counts:
        options["morph_counts"] = tuple(_numbers(args.morph_counts, int, "--morph_counts"))
    if args.sampler_steps:
        options["sampler_steps"] = tuple(_numbers(args.sampler_steps, int, "--sampler_steps"))
    name, source = _target(args)
    card = calibration.calibrate(name, source, **options)
    print(json.dumps({"inference": card["inference"], "calibration": card["calibration"]}, indent=2))


def cmd_card(args):
    from tfdefense import evaluation
    from tfdefense.evaluation import harness

    for path in args.reports:
        card = harness.write_to_card(args.name, evaluation.Report.read(path), args.source)
    print(json.dumps(card["measured"], indent=2))


def cmd_leaderboard(args):
    from tfdefense.evaluation import leaderboard

    table = leaderboard.write(args.output, models=args.model)
    if args.readme:
        leaderboard.write_readme_table(args.readme, table)
    print(f"{args.output}: {len(table)} models")


def parser():
    top = argparse.ArgumentParser(prog="tfdefense", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, fn, help_):
        p = sub.add_parser(name, help=help_, description=help_, allow_abbrev=False)
        p.set_defaults(fn=fn)
        return p

    command("list", cmd_list, "every entry: whether its weights are here, cached or downloadable, size, clean accuracy")

    p = command("download", cmd_download, "fetch entries' weights into the cache, or into --to DIR with their cards")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every published entry")
    p.add_argument("--to", help="write DIR/<name>/ (weights and card): a folder for TFDEFENSE_MODELS_DIR")

    p = command("release", cmd_release, "write a mirror (weights, cards, index.json) for a static file server")
    p.add_argument("dir")
    p.add_argument("names", nargs="*", metavar="NAME", help="entries to include (default: every published one)")

    p = command("train", cmd_train, "train a registered entry, or a family on your data (--data), checkpointing "
                                    "every epoch")
    p.add_argument("name", help="an entry, or a family with --data")
    p.add_argument("--data", help="your data: tfds:NAME, PATH.npz (x, y) or DIR (one folder per class)")
    p.add_argument("--classifier", help="your saved Keras classifier (.keras): the one the defense protects")
    p.add_argument("--name", dest="as_name", help="the trained defense's name (default: FAMILY_DATA)")
    p.add_argument("--workdir", help="training folder (default: ./runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --workdir")
    p.add_argument("--warm_start", action="store_true",
                   help="with no checkpoint in --workdir, continue the schedule from the published weights")
    p.add_argument("--init_from", help="start from another published entry's weights; 'none' starts from scratch")
    p.add_argument("--publish", nargs="?", const=True, default=None, metavar="DIR",
                   help="copy the trained weights and card to DIR/NAME/ (default: $TFDEFENSE_MODELS_DIR, or the "
                        "checkout's saved_models/)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch_size", type=int)
    p.add_argument("--learning_rate", type=float)
    p.add_argument("--steps_per_epoch", type=int, help="limit steps per epoch (smoke runs)")
    p.add_argument("--validation_steps", type=int, help="limit validation batches per epoch (default: all)")
    p.add_argument("--strategy", default="default", choices=("default", "mirrored", "multi_worker"),
                   help="tf.distribute: one device (default), this host's GPUs (mirrored), or the workers of "
                        "TF_CONFIG (multi_worker); --batch_size is the global batch")
    p.add_argument("--seed", type=int, help="override the training seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a model setting (JSON value), e.g. --set=adversarial=false")

    p = command("evaluate", cmd_evaluate, "clean accuracy and robustness under attacks, as a report")
    p.add_argument("name", nargs="?", default=None, help=f"entry (default: {DEFAULT_MODEL})")
    p.add_argument("--attacks", type=_csv, default=_csv(DEFAULT_ATTACKS),
                   help="fgsm,bim,pgd,pgd_restarts,mim,cw,deepfool,deepfool_linf,spsa, autoattack,square,jsma,"
                        "cw_linf (ART), half_mask,gaussian_noise; 'none' for clean accuracy only "
                        f"(default: {DEFAULT_ATTACKS})")
    p.add_argument("--threat", type=_csv, default=["gray"], help="gray,white,black (default: gray)")
    p.add_argument("--n", type=int, default=1000, help="images drawn from --split by --seed (default: 1000)")
    p.add_argument("--split", default="eval", help="eval (default), test, dev, validation")
    p.add_argument("--eps", type=float, default=0.3, help="Linf budget (default: 0.3)")
    p.add_argument("--seed", type=int, default=0, help="image sampling and attacks (default: 0)")
    p.add_argument("--output_dir", help="write report.json, report.md and PNG figures here")
    p.add_argument("--params", type=_json, default={}, help='per-attack JSON, e.g. \'{"pgd": {"nb_iter": 100}}\'')
    p.add_argument("--white_box", type=_json, default={}, help='BPDA/EOT JSON, e.g. \'{"bpda": "surrogate", "eot": 8}\'')
    p.add_argument("--black_box", type=_json, default={}, help='substitute JSON, e.g. \'{"arch": "c", "rounds": 6}\'')
    p.add_argument("--sweep", type=int, default=0, help="eps values for an accuracy-vs-eps curve (0: none)")
    p.add_argument("--sweep_n", type=int, default=200, help="images for the sweep and the detector curves")
    p.add_argument("--sweep_range", type=_csv, default=["0", "0.4"], help="smallest,largest eps of --sweep")
    p.add_argument("--sweep_attacks", type=_csv, default=["fgsm", "pgd"], help="gray-box attacks of --sweep")
    p.add_argument("--sanity", action="store_true",
                   help="run the built-in sanity checks (white-box as --white_box says)")
    p.add_argument("--sanity_n", type=int, default=100, help="images for --sanity (default: 100)")
    p.add_argument("--queries", type=int, default=10, help="a random defense is also scored when it must answer "
                   "each input right under K seeds (default: 10; 1 skips it)")
    p.add_argument("--update-card", "--update_card", dest="update_card", action="store_true",
                   help="write the measured numbers into the card of the local store (or --source)")
    p.add_argument("--data", help="evaluate on this data instead of the model's own (same shape): tfds:NAME, "
                                   "PATH.npz or DIR")
    p.add_argument("--dtype_policy", help="build the networks under this Keras dtype policy, e.g. mixed_bfloat16 "
                                          "(default: float32); the attacks then differentiate the bfloat16 "
                                          "networks too, a weaker attacker than float32's")
    p.add_argument("--shard", help="I/K: evaluate shard I of K (0-based) into --output_dir, for `tfdefense merge`; "
                                   "e.g. --shard=$JOB_COMPLETION_INDEX/8")
    p.add_argument("--block_size", type=int, default=256, help="images per seeded block, the unit of --shard "
                                                               "(default: 256; the shards and the merge must agree)")
    p.add_argument("--substitute", help="black-box substitute folder: used if there, else trained and saved there "
                                        "(shards: train it first with `tfdefense substitute`)")
    _model_flags(p, "evaluate")
    _inference_flags(p)

    p = command("merge", cmd_merge, "one report from the output folders of evaluate --shard=I/K, exactly as one "
                                    "process would have written it")
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--output_dir", help="write the merged report.json and report.md here")
    p.add_argument("--update-card", "--update_card", dest="update_card", action="store_true",
                   help="write the merged numbers into the model's card (the one in --source when given)")
    p.add_argument("--source", help="the folder holding the card (default: the local store)")

    p = command("substitute", cmd_substitute, "train and save, once, the black-box substitute that the shards "
                                              "of a sharded black-box evaluation share")
    p.add_argument("name", nargs="?", help="entry (or --model=DIR)")
    p.add_argument("dir", nargs="?", help="folder to write substitute.keras and substitute.json to")
    p.add_argument("--seed", type=int, default=0, help="the evaluation's --seed (default: 0)")
    p.add_argument("--black_box", type=_json, default={}, help="the evaluation's --black_box JSON")
    p.add_argument("--data", help="the evaluation's --data")
    _model_flags(p, "substitute")
    _inference_flags(p)

    p = command("export", cmd_export, "a TF Serving SavedModel: DIR/NAME/VERSION/ (--all DIR: the whole zoo)")
    p.add_argument("name", nargs="?", help="entry (or --model=DIR)")
    p.add_argument("dir", nargs="?")
    p.add_argument("--all", metavar="DIR", help="every entry whose weights are here, plus models.config and "
                                               "batching.config for one tensorflow_model_server")
    p.add_argument("--names", type=_csv, default=[], help="with --all: only these entries")
    p.add_argument("--base_path", default="/models", help="with --all: where the server sees DIR "
                                                          "(default: /models)")
    p.add_argument("--version", type=int, help="default: the next free one")
    p.add_argument("--dtype_policy", help="export the networks built under this Keras dtype policy, e.g. "
                                          "mixed_bfloat16 (default: the card's recommended_policy from bench --accuracy_n, else float32)")
    _model_flags(p, "export")
    _inference_flags(p)

    p = command("bench", cmd_bench, "images/s, latency (in-process and exported), FLOPs, memory, as JSON")
    p.add_argument("name", nargs="?", help="entry (or --model=DIR)")
    p.add_argument("--batch", type=_csv, default=["1", "128"], help="batch sizes for images/s (default: 1,128)")
    p.add_argument("--policy", type=_csv, default=["float32"],
                   help="Keras dtype policies, e.g. float32,mixed_bfloat16 (default: float32)")
    p.add_argument("--seconds", type=float, default=2.0, help="how long each timing repeats (default: 2)")
    p.add_argument("--no_export", "--no-export", dest="no_export", action="store_true",
                   help="skip the exported SavedModel's latency")
    p.add_argument("--update-card", "--update_card", dest="update_card", action="store_true",
                   help="store the result in the card's measured.cost")
    p.add_argument("--accuracy_n", type=int, default=0,
                   help="labelled eval images on which each policy's accuracy is measured, clean and under "
                        "gray-box FGSM and PGD crafted on the float32 classifier (default: 0, not measured)")
    p.add_argument("--eps", type=float, default=0.3, help="with --accuracy_n: the attacks' Linf budget")
    p.add_argument("--ops", action="store_true",
                   help="profile the served graph op by op at the largest batch (TF Serving's session loader): "
                        "each op type's share of the time, and the rate of the convolutions and matmuls")
    _model_flags(p, "bench")
    _inference_flags(p)

    p = command("calibrate", cmd_calibrate, "choose inference settings and detector thresholds on validation data")
    p.add_argument("name", nargs="?", help="entry (or --model=DIR)")
    _model_flags(p, "calibrate")
    p.add_argument("--n", type=int, help="validation images")
    p.add_argument("--fpr", type=float, help="the detectors' false-positive rate on clean validation images "
                                             "(default: the family's, e.g. 0.001 for MagNet)")
    p.add_argument("--step_sizes", type=_csv, default=[], help="candidate search step sizes")
    p.add_argument("--tune_attacks", type=_csv, default=[], help="gray-box attacks whose worst case is maximised")
    p.add_argument("--morph_counts", type=_csv, default=[],
                   help="FM-Defense: candidate morph counts (the smallest that detects like the largest is kept)")
    p.add_argument("--sampler_steps", type=_csv, default=[],
                   help="DiffPure: candidate reverse-sampler step counts at the chosen t* (default: 2,5,10,20)")

    p = command("card", cmd_card, "merge report.json files into an entry's card")
    p.add_argument("name")
    p.add_argument("--reports", type=_csv, required=True)
    p.add_argument("--source", help="the folder whose card to update")

    p = command("leaderboard", cmd_leaderboard, "every defense's card side by side (markdown + PNG)")
    p.add_argument("--output", default="docs/leaderboard.md", help="default: docs/leaderboard.md (in the "
                   "current folder)")
    p.add_argument("--readme", help="also rewrite the zoo table between the markers in this README")
    p.add_argument("--model", action="append", default=[], metavar="DIR",
                   help="add a defense you trained (its export/ folder, evaluated with --update-card); repeatable")
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices are not for end users
    from tfdefense.datasets import DatasetError
    from tfdefense.zoo.registry import UnknownModelError, WeightsError

    try:
        args.fn(args)
    except (UnknownModelError, WeightsError, DatasetError, FileExistsError, FileNotFoundError, ValueError,
            TypeError) as e:
        print(f"tfdefense {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


def run():
    # TensorFlow's C++ start-up lines (cuInit on a machine without a GPU, oneDNN notices) are not for
    # users; TF_CPP_MIN_LOG_LEVEL set by the user wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
