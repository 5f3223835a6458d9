"""Entries under an older commit of the package and under this one, side by side, printed as JSON.

Each entry purifies the same eval images under both versions of the code, each version in its own
process (the older one from a `git worktree` of ``--before``, with that commit's weights, cards and
settings). The processes alternate, ``--rounds`` times each, and each side keeps its best round, so a
burst of load on the machine hits both sides alike. Every process also times the fp32 matmul, so each
side's rate is a fraction of the machine it ran on. Both sides time with this checkout's
`tfdefense/utils/timing.py`, as `tfdefense bench` does: the median call, and the higher of
the matmul readings right before and right after the timings.

Per entry and side: images/s at batch ``--n``, one-image p50 latency in-process, the fp32 matmul rate,
clean accuracy, the flagged and rejected fractions, and how many labels agree between the two sides.

    python benchmarks/before_after.py --before=a6f7342 --names=aegan_mnist,magnet_mnist --n=128 --output=ba.json
    python benchmarks/before_after.py --markdown=ba.json     # the markdown table of docs/serving.md
    python benchmarks/before_after.py --before=a6f7342 --names=fmdefense_mnist --n=32 --after_policy=recommended

With ``--after_policy=recommended`` the after side runs as `tfdefense export` serves it, under the dtype
policy its card recommends (bfloat16 where accuracy moved by at most half a point).

A change of settings (FM-Defense's morph count, chosen on validation data after ``--before``) changes
labels on purpose; a refactor that claims the same outputs should agree on every label.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _timing():
    """This checkout's `tfdefense/utils/timing.py`, loaded by its path: it imports nothing of the package, so
    both sides are timed by the same code whichever `tfdefense` a side runs."""
    spec = importlib.util.spec_from_file_location("_timing", os.path.join(ROOT, "tfdefense", "utils", "timing.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(name, images_path, seconds, policy=""):
    """Runs in the process of one side: whichever `tfdefense` is first on sys.path, under dtype ``policy``
    ("recommended": the card's; empty: the package's default)."""
    import tfdefense

    data = np.load(images_path)
    x, y = data["x"], data["y"]
    model = tfdefense.load(name, **({"dtype_policy": policy} if policy else {}))
    n = len(x)
    out = model.defend(x, seed=0, batch_size=n)
    timing = _timing()
    (batch, single), _, matmul = timing.bracketed(lambda: (
        timing.timings(lambda: model.defend(x, seed=0, batch_size=n), seconds, max_runs=1000),
        timing.timings(lambda: model.defend(x[:1], seed=0, batch_size=1), seconds / 2, max_runs=1000, min_runs=5)))
    return {
        "package": os.path.dirname(os.path.abspath(tfdefense.__file__)),
        "images_per_s": round(n / float(np.median(batch)), 2),
        "single_image_p50_ms": round(1e3 * float(np.median(single)), 2),
        "matmul_gflops": round(matmul, 1),
        "accuracy": round(float(np.mean(out["label"] == y)), 4),
        "flagged": round(float(np.mean(out["is_adversarial"])), 4),
        "rejected": round(float(np.mean(out["rejected"])), 4),
        "labels": np.asarray(out["label"]).tolist(),
    }


def worktree(commit):
    """A checkout of ``commit`` (code, weights and cards) beside this one, made once."""
    sha = subprocess.check_output(["git", "-C", ROOT, "rev-parse", "--short", commit], text=True).strip()
    path = os.path.join(tempfile.gettempdir(), f"tfdefense-before-{sha}")
    if not os.path.isdir(path):
        subprocess.check_call(["git", "-C", ROOT, "worktree", "add", "--detach", path, sha],
                              stdout=subprocess.DEVNULL)
    return sha, path


def run_side(tree, name, images_path, seconds, policy=""):
    env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name, images_path,
                             str(seconds), policy], env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{name} under {tree} failed: {result.stderr.strip().splitlines()[-1][:400]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(name, before_tree, n, rounds, seconds, after_policy=""):
    from tfdefense.evaluation import harness
    from tfdefense.zoo import registry

    dataset = registry.get_entry(name)["metadata"]["dataset"]
    x, y = harness.sample(dataset, n, 0)
    with tempfile.TemporaryDirectory() as tmp:
        images = os.path.join(tmp, "images.npz")
        np.savez(images, x=np.asarray(x, np.float32), y=np.asarray(y))
        sides = {"before": [], "after": []}
        for _ in range(rounds):
            sides["before"].append(run_side(before_tree, name, images, seconds))
            sides["after"].append(run_side(ROOT, name, images, seconds, after_policy))
    best = {k: max(v, key=lambda r: r["images_per_s"]) for k, v in sides.items()}
    agree = float(np.mean(np.equal(best["before"].pop("labels"), best["after"].pop("labels"))))
    return {"name": name, "n": n, "dataset": dataset, "after_policy": after_policy or "default", "before": best["before"], "after": best["after"],
            "speedup": round(best["after"]["images_per_s"] / best["before"]["images_per_s"], 3),
            "matmul_normalized_speedup": round(
                (best["after"]["images_per_s"] / best["after"]["matmul_gflops"]) /
                (best["before"]["images_per_s"] / best["before"]["matmul_gflops"]), 3),
            "label_agreement": round(agree, 4)}


HEADER = ("| entry | n | before images/s | after images/s | speedup | divided by each side's matmul rate "
          "| one image p50 ms, before / after | accuracy before / after | flagged before / after | labels that agree |"
          "\n|---|---|---|---|---|---|---|---|---|---|")


def markdown(rows):
    """The side-by-side table of `compare` rows, one markdown row per entry (docs/serving.md)."""
    lines = [HEADER]
    for r in rows:
        if "error" in r:
            reason = r["error"].split("Error: ")[-1].split(". ")[0]  # the exception's first sentence
            lines.append(f"| {r['name']} | {r['n']} | not run: {reason} |" + " |" * 7)
            continue
        b, a = r["before"], r["after"]
        policy = r.get("after_policy", "default")
        name = r["name"] if policy == "default" else f"{r['name']} (after: {policy} dtype policy)"
        lines.append(f"| {name} | {r['n']} | {b['images_per_s']:,.1f} | {a['images_per_s']:,.1f} "
                     f"| {r['speedup']:.2f}x | {r['matmul_normalized_speedup']:.2f}x "
                     f"| {b['single_image_p50_ms']:.1f} / {a['single_image_p50_ms']:.1f} "
                     f"| {b['accuracy']:.3f} / {a['accuracy']:.3f} | {b['flagged']:.3f} / {a['flagged']:.3f} "
                     f"| {r['label_agreement']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", help="the older commit (e.g. the one before an issue's work)")
    p.add_argument("--names", help="entries, comma-separated")
    p.add_argument("--markdown", metavar="JSON", help="print the table of a JSON this script wrote, and stop")
    p.add_argument("--n", type=int, default=128, help="eval images, one batch (default: 128)")
    p.add_argument("--rounds", type=int, default=2, help="processes per side, alternating (default: 2)")
    p.add_argument("--seconds", type=float, default=3.0, help="how long each timing repeats (default: 3)")
    p.add_argument("--after_policy", default="", help="dtype policy of the after side: 'recommended' (the card's, "
                   "as `tfdefense export` serves it), a Keras policy, or empty for the default (float32)")
    p.add_argument("--output", help="also write the JSON here")
    args = p.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as f:
            print(markdown(json.load(f)))
        return
    if not (args.before and args.names):
        p.error("--before and --names are required (or --markdown=JSON)")
    sha, tree = worktree(args.before)
    rows = []
    for name in args.names.split(","):
        try:
            row = compare(name, tree, args.n, args.rounds, args.seconds, args.after_policy)
        except RuntimeError as error:  # e.g. an entry not yet published at --before: the others still run
            row = {"name": name, "n": args.n, "error": str(error)}
        row["before_commit"] = sha
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.output:  # after every entry: a run killed midway keeps what it measured
            with open(args.output, "w") as f:
                json.dump(rows, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        sys.path.insert(0, os.environ.get("PYTHONPATH", ROOT))
        print(json.dumps(worker(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])))
    else:
        main()
