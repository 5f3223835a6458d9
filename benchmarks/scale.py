"""What more workers buy: measured here (two local workers against one) and, on paper, for the whole zoo.

Prints one JSON document:

* ``training``: APE-GAN steps at the same global batch, one process against
  two MultiWorkerMirroredStrategy workers on 127.0.0.1 (images/s from the
  epochs' wall time, the first epoch's tracing excluded);
* ``evaluation``: one gray-box PGD run of magnet_mnist in one process against
  the same run as two shards side by side, and the merged counts' equality;
* ``zoo_on_paper``: every result in the zoo's reports scaled to ``--n``
  images at its measured seconds per image, and the wall time K workers need
  when the 256-image blocks of every result are spread over them, after what
  does not shard: each black-box entry's substitute (its 4,800 oracle queries
  at the entry's measured batch-128 rate). Calibration, which runs once before
  any shard, is not in the reports and is left out. A result of n images has
  ceil(n / 256) blocks, so no result finishes faster than its longest block.

On this 2-core machine two workers share the same two cores, so the honest
speed-up is near 1x; the paper figures are for K machines like this one.

    python benchmarks/scale.py --n=1000 --workers=1,2,4,8,16,64
"""

import glob
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from tfdefense import testing

flags.DEFINE_integer("n", 1000, "images per result in the on-paper protocol")
flags.DEFINE_list("workers", ["1", "2", "4", "8", "16", "64"], "worker counts for the on-paper figures")
flags.DEFINE_integer("steps", 20, "training steps per epoch in the measured comparison")
flags.DEFINE_integer("batch_size", 64, "global batch of the measured training comparison")
flags.DEFINE_integer("eval_n", 512, "images of the measured evaluation comparison")
flags.DEFINE_bool("measure", True, "run the measured comparisons (else only the on-paper figures)")
FLAGS = flags.FLAGS
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BLOCK = 256  # `tfdefense.evaluation.shards.BLOCK_SIZE`
ORACLE_QUERIES = 4800  # 150 holdout images doubled over 6 rounds (BLACK_BOX_DEFAULTS)


def _run(commands, envs):
    start = time.time()
    procs = [subprocess.Popen([sys.executable, "-c", "from tfdefense.cli import run; run()", *c],
                              env={**os.environ, **e}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c, e in zip(commands, envs)]
    for p in procs:
        _, err = p.communicate(timeout=3600)
        if p.returncode:
            raise RuntimeError(err[-2000:])
    return time.time() - start


def _epoch_seconds(workdir):
    state = json.load(open(os.path.join(workdir, "state.json")))
    return state["wall_time_s"]


def measure_training(tmp):
    args = ["train", "apegan_mnist", "--epochs=1", f"--steps_per_epoch={FLAGS.steps}",
            f"--batch_size={FLAGS.batch_size}"]
    out = {"entry": "apegan_mnist", "global_batch": FLAGS.batch_size, "steps": FLAGS.steps}
    one = os.path.join(tmp, "one")
    out["one_process_wall_s"] = round(_run([args + [f"--workdir={one}"]], [{}]), 1)
    hosts = [f"127.0.0.1:{p}" for p in testing.loopback_ports(2)]
    two = os.path.join(tmp, "two")
    envs = [{"TF_CONFIG": json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})}
            for i in range(2)]
    out["two_workers_wall_s"] = round(_run([args + [f"--workdir={two}", "--strategy=multi_worker"]] * 2, envs), 1)
    images = FLAGS.steps * FLAGS.batch_size
    for key, folder in (("one_process", one), ("two_workers", two)):
        out[f"{key}_epoch_s"] = round(_epoch_seconds(folder), 2)
        out[f"{key}_images_per_s"] = round(images / _epoch_seconds(folder), 1)
    out["speedup"] = round(out["two_workers_images_per_s"] / out["one_process_images_per_s"], 2)
    return out


def measure_evaluation(tmp):
    args = ["evaluate", "magnet_mnist", "--attacks=pgd", "--threat=gray", f"--n={FLAGS.eval_n}", "--queries=1"]
    one = os.path.join(tmp, "eval_one")
    out = {"entry": "magnet_mnist", "attack": "gray pgd-40", "n": FLAGS.eval_n,
           "one_process_wall_s": round(_run([args + [f"--output_dir={one}"]], [{}]), 1)}
    dirs = [os.path.join(tmp, f"eval_shard{i}") for i in range(2)]
    out["two_shards_wall_s"] = round(_run([args + [f"--shard={i}/2", f"--output_dir={d}"]
                                           for i, d in enumerate(dirs)], [{}, {}]), 1)
    out["speedup"] = round(out["one_process_wall_s"] / out["two_shards_wall_s"], 2)
    from tfdefense.evaluation import core, shards

    merged, single = shards.merge(dirs), core.Report.read(os.path.join(one, "report.json"))
    strip = [{k: v for k, v in vars(r).items() if k != "wall_time_s"} for r in single.results]
    out["merged_equals_one_process"] = (merged.clean == single.clean and strip == [
        {k: v for k, v in vars(r).items() if k != "wall_time_s"} for r in merged.results])
    return out


def _schedule(jobs, k, start=None):
    """Each worker's finishing time when ``jobs`` (seconds) go, longest first, to the worker free soonest."""
    import heapq

    heap = list(start or [0.0] * k)
    heapq.heapify(heap)
    for job in sorted(jobs, reverse=True):
        heapq.heappush(heap, heapq.heappop(heap) + job)
    return heap


def zoo_on_paper():
    entries = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "saved_models", "*", "reports", "*", "report.json"))):
        report = json.load(open(path))
        name = report["model"]
        card_path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(path))), "model_card.json")
        card = json.load(open(card_path)) if os.path.exists(card_path) else {}
        entry = entries.setdefault(name, {"results": {}, "sharded_s": 0.0, "unsharded_s": 0.0})
        for r in report["results"]:
            if not r["n"] or "settings" in report and report["settings"].get("merged_from"):
                continue
            key = f"{r['threat']}/{r['attack']}"
            per_image = r["wall_time_s"] / r["n"]
            entry["results"][key] = max(entry["results"].get(key, 0.0), per_image)  # the slowest setting
            if r["threat"] == "black" and not entry.get("substitute_s"):
                cost = ((card.get("measured") or {}).get("cost") or {}).get("policies", {}).get("float32", {})
                rate = cost.get("images_per_s", {}).get("128")
                entry["substitute_s"] = ORACLE_QUERIES / rate if rate else None
    total_sharded = total_unsharded = 0.0
    blocks = []  # the unit a shard takes: 256 images of one result
    for name, entry in entries.items():
        entry["sharded_s"] = sum(v * FLAGS.n for v in entry["results"].values())
        entry["unsharded_s"] = entry.get("substitute_s") or 0.0
        total_sharded += entry["sharded_s"]
        total_unsharded += entry["unsharded_s"]
        for per_image in entry["results"].values():
            full, rest = divmod(FLAGS.n, BLOCK)
            blocks += [per_image * BLOCK] * full + ([per_image * rest] if rest else [])
    workers = {}
    for k in (int(w) for w in FLAGS.workers):
        # First the substitutes (one per black-box entry) spread over the K workers, then every block of every
        # result, longest first, each to the worker that is free soonest.
        load = sorted(_schedule([e["unsharded_s"] for e in entries.values() if e["unsharded_s"]], k))
        wall = max(_schedule(blocks, k, load))
        workers[str(k)] = {"wall_h": round(wall / 3600, 2),
                           "speedup": round((total_sharded + total_unsharded) / wall, 1)}
    return {"n_per_result": FLAGS.n, "entries": len(entries),
            "results": sum(len(e["results"]) for e in entries.values()),
            "serial_cpu_h": round((total_sharded + total_unsharded) / 3600, 1),
            "not_sharded_h": round(total_unsharded / 3600, 2),
            "slowest_entries_h": dict(sorted(((n, round(e["sharded_s"] / 3600, 1)) for n, e in entries.items()),
                                             key=lambda kv: -kv[1])[:5]),
            "by_workers": workers,
            "longest_block_h": round(max(blocks, default=0.0) / 3600, 2),
            "left_out": "calibration (once per entry, before the shards) and the eps sweeps and sanity checks, "
                        "which run in one process"}


def main(argv):
    del argv
    result = {"machine": f"{os.cpu_count()} CPU cores"}
    if FLAGS.measure:
        with tempfile.TemporaryDirectory() as tmp:
            result["training"] = measure_training(tmp)
            result["evaluation"] = measure_evaluation(tmp)
    result["zoo_on_paper"] = zoo_on_paper()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app.run(main)
