"""What one entry costs to serve on this machine: ``tfdefense bench NAME``.

`bench` loads an entry (a published one or a defense you trained) under each dtype policy and measures,
in one run and on the same images:

* images/s of the whole pipeline (`DefendedClassifier.defend`) at each batch size;
* p50 / p95 latency of one image, in-process and through the exported SavedModel (the graph TF Serving
  runs, loaded back with ``tf.saved_model.load``): the first image, and a flagged one for a defense whose
  detector lets unflagged inputs take a cheap path (AE-GAN+rs); the export's size beside the weights';
* FLOPs per image, counted from the layers (`DefendedClassifier.flops`), and the fraction of this
  machine's float32 matmul rate they reach at the largest batch (the matmul rate is measured in the same
  run, right before and after each policy's timings, the higher reading, so the ratio holds on any
  machine and under a drifting load);
* the peak resident memory of the process while the policy was measured;
* for a policy other than float32, how often its labels agree with float32's on the same images;
* how many times the pipeline was traced (batches of any size must share a trace, not retrace);
* with ``ops``, a per-op profile of the served graph at the largest batch, run by the TF1 session loader
  that TF Serving uses: the time of each op type, and the rate the convolutions and matmuls reach for the
  FLOPs counted from the layers, so that what caps a purifier has a name and a measured rate;
* with ``accuracy_n``, each policy's accuracy and rejections on that many labelled eval images, clean and
  under gray-box FGSM and PGD crafted once, on the float32 classifier, so that every policy answers the
  same inputs (an attack that differentiated bfloat16 networks would be weaker and overstate them), and
  the fastest policy whose accuracy moves by at most 0.5 points (``recommended_policy``).

Every timing warms up first (the first call traces), then repeats until ``seconds`` have passed, at least
twice and at most ``max_runs`` times. One image's in-process and exported calls alternate, so their ratio
is measured side by side. The result is JSON; ``update_card`` stores it in the card's
``measured.cost`` through the locked card writer, and the leaderboard's cost column reads it from there.

Example:
    >>> from tfdefense.zoo import bench
    >>> result = bench.run("apegan_mnist", batches=(1, 128))                     # doctest: +SKIP
    >>> result["policies"]["float32"]["images_per_s"]["128"]                     # doctest: +SKIP
"""

import contextlib
import json
import os
import platform
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfdefense import datasets
from tfdefense.utils import progress
from tfdefense.utils import timing
from tfdefense.zoo import calibration, cards, export, registry, store

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def reset_peak_memory():
    """Starts a new peak-RSS window (Linux: /proc/self/clear_refs); False where the OS has none."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb():
    """Peak resident memory of this process (MB): since the last `reset_peak_memory` on Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bench_images(model, n, seed=0):
    """``n`` eval images of the entry's dataset when it is on this machine (``TFDEFENSE_DATA_DIR``, or the
    data file a defense you trained names), else uniform noise: a bench never waits on a download. Noise is
    the expensive path of a detector that lets clean-looking inputs take a cheap one."""
    from tfdefense.evaluation import harness

    dataset = (model.card or {}).get("dataset")
    x, source = None, "uniform noise"
    if dataset and (dataset not in datasets.NAMES or os.environ.get(datasets.ENV_VAR)):
        try:
            x, _ = harness.sample(dataset, n, seed)
            source = f"{dataset} eval"
        except (datasets.DatasetError, OSError, ValueError):
            x = None
    if x is None:
        x = np.random.default_rng(seed).random((n, *model.image_shape), np.float32)
    x = np.asarray(x, np.float32)
    if len(x) < n:
        x = np.concatenate([x] * (n // len(x) + 1))[:n]
    return x, source


def _percentiles_ms(seconds):
    return {"p50": round(1e3 * float(np.percentile(seconds, 50)), 2),
            "p95": round(1e3 * float(np.percentile(seconds, 95)), 2), "runs": len(seconds)}


def _folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


@contextlib.contextmanager
def served(model):
    """(serving_default of ``model`` exported and loaded back, the export's sizes), in a temporary folder."""
    tmp = tempfile.mkdtemp(prefix="tfdefense-bench-")
    try:
        path = export.export(model, tmp, "bench", version=1)
        weights = sum(v.numpy().nbytes for v in model.weights)
        variables = _folder_bytes(os.path.join(path, "variables"))
        sizes = {"variables_mb": round(variables / 1e6, 2), "weights_mb": round(weights / 1e6, 2),
                 "variables_to_weights": round(variables / max(weights, 1), 3),
                 "saved_model_mb": round(_folder_bytes(path) / 1e6, 2)}
        yield tf.saved_model.load(path).signatures["serving_default"], sizes, path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Op types that do the FLOPs `DefendedClassifier.flops` counts (Dense, Conv2D, Conv2DTranspose), matched as
# parts of TensorFlow's and oneDNN's (_Mkl*) op names; "Conv2D" also matches Conv2DBackpropInput, the
# transposed convolution.
FLOP_OPS = ("Conv2D", "MatMul", "Einsum")


def _op_type(node):
    """A traced node's op type: 'name = _MklNativeFusedConv2D(a, b)' -> '_MklNativeFusedConv2D'."""
    label = node.timeline_label
    return label.split("=", 1)[1].split("(", 1)[0].strip() if "=" in label else node.node_name


def op_profile(path, x, flops, matmul, signature="serving_default", top=10):
    """Per-op profile of one call of the SavedModel at ``path`` on images ``x``, run by the TF1 session loader
    (what TF Serving runs) with a full trace, after one warm-up call.

    Returns the traced call's seconds, the ``top`` op types by their summed time (ms, share, count), and for
    the op types that do the counted FLOPs (`FLOP_OPS`, ``flops`` for the whole batch) their share and
    rate, as a fraction of the fp32 matmul rate ``matmul`` (GFLOP/s).
    """
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as session:
        meta = tf1.saved_model.loader.load(session, [tf1.saved_model.tag_constants.SERVING], path)
        sig = meta.signature_def[signature]
        feed = {sig.inputs["images"].name: x}
        fetch = {k: v.name for k, v in sig.outputs.items()}
        session.run(fetch, feed)
        metadata = tf1.RunMetadata()
        start = time.perf_counter()
        session.run(fetch, feed, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE),
                    run_metadata=metadata)
        seconds = time.perf_counter() - start
    ms, count = {}, {}
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            op = _op_type(node)
            ms[op] = ms.get(op, 0.0) + (node.op_end_rel_micros - node.op_start_rel_micros) / 1e3
            count[op] = count.get(op, 0) + 1
    total = max(sum(ms.values()), 1e-9)
    flop_ms = sum(t for op, t in ms.items() if any(f in op for f in FLOP_OPS))
    out = {"batch": int(len(x)), "seconds": round(seconds, 3), "op_ms_total": round(total, 1),
           "ops": [{"op": op, "ms": round(t, 1), "share": round(t / total, 3), "count": count[op]}
                   for op, t in sorted(ms.items(), key=lambda kv: -kv[1])[:top]],
           "flop_ops": {"share": round(flop_ms / total, 3)}}
    if flop_ms:
        rate = flops / (flop_ms / 1e3) / 1e9
        out["flop_ops"].update(gflops_per_s=round(rate, 1), fraction_of_fp32_matmul=round(rate / matmul, 3))
    return out


def _load(name, source, policy, overrides):
    return registry.load(name, source, dtype_policy=policy, **overrides)


def measure_policy(model, x, batches, matmul=None, seconds=2.0, max_runs=50, exported=True, reference_labels=None,
                   ops=False):
    """One policy's figures for ``model`` on images ``x`` (see the module docstring). The fp32 matmul rate
    ``matmul`` (GFLOP/s) is measured right before and right after the batch timings unless given, and the
    higher reading is used: the load of a shared machine drifts over the minutes a run takes, so the rate
    an entry reaches is divided by the rate measured beside it, and one slow reading (102 against the usual
    200 GFLOP/s here) cannot inflate the fraction."""
    flops = model.flops()

    def batch_rates():
        per_call = {b: timing.timings(lambda b=b: model.defend(x[:b], batch_size=b), seconds, max_runs)
                    for b in batches}
        return {str(b): round(b / float(np.median(t)), 2) for b, t in per_call.items()}

    out = {}
    out["images_per_s"], readings, matmul = timing.bracketed(batch_rates, matmul)
    if len(readings) > 1:
        out["fp32_matmul_gflops_before_after"] = readings
    out["fp32_matmul_gflops"] = matmul
    largest = max(batches)
    outputs = model.defend(x[:largest], batch_size=largest)
    flagged = float(np.mean(outputs["is_adversarial"]))
    # An unflagged input takes a bypass detector's cheap path: count the FLOPs the pipeline really ran.
    executed = flops["total"] if "unflagged" not in flops else (
        flagged * flops["total"] + (1 - flagged) * flops["unflagged"])
    rate = executed * out["images_per_s"][str(largest)] / 1e9
    out.update(flagged=round(flagged, 4), executed_flops_per_image=int(executed),
               gflops_per_s=round(rate, 2), fraction_of_fp32_matmul=round(rate / matmul, 3))
    if reference_labels is not None:
        out["label_agreement_with_float32"] = round(float(np.mean(outputs["label"] == reference_labels)), 4)
    # One image: the first, and for a defense whose detector sends unflagged inputs a cheap way, a flagged one.
    singles = {"first_image": x[:1]}
    flagged_index = np.flatnonzero(outputs["is_adversarial"])
    if "unflagged" in flops and len(flagged_index):
        singles["flagged_image"] = x[flagged_index[0]:flagged_index[0] + 1]
    if exported:
        # In-process and exported calls alternate, so their ratio is measured side by side.
        with served(model) as (serve, sizes, path):
            out["latency_ms"] = {}
            for key, one in singles.items():
                images = tf.constant(one)
                local, remote = timing.paired_timings([lambda one=one: model.defend(one),
                                                lambda images=images: serve(images=images)["label"].numpy()],
                                               2 * seconds, max_runs)
                out["latency_ms"][key] = latency = {"in_process": _percentiles_ms(local),
                                                    "exported": _percentiles_ms(remote)}
                latency["exported_over_in_process"] = round(latency["exported"]["p50"] / latency["in_process"]["p50"], 3)
            if ops:
                out["op_profile"] = op_profile(path, x[:largest], executed * largest, matmul)
        out["export"] = sizes
    else:
        out["latency_ms"] = {key: {"in_process": _percentiles_ms(timing.timings(lambda one=one: model.defend(one), seconds,
                                                                         max_runs))}
                             for key, one in singles.items()}
    out["pipeline_traces"] = model.tracing_count  # at most 2 (one per new shape, then one generalized trace)
    out["labels"] = outputs["label"]
    return out


ACCURACY_ATTACKS = ("fgsm", "pgd")
MAX_ACCURACY_MOVE = 0.005  # a policy other than float32 is recommended only within half a point everywhere


def labelled_images(name, n, seed=0):
    """``n`` labelled eval images of the entry's dataset (the accuracy measurement needs the data). The
    registry knows the dataset of every entry, a defense trained into a folder included."""
    from tfdefense.evaluation import harness

    return harness.sample(registry.get_entry(name)["metadata"]["dataset"], n, seed)


def policy_accuracy(model, inputs, y, seed=0):
    """{row: {"accuracy", "rejected"}} of ``model`` on each set of images in ``inputs`` ({row: images}),
    and the labels it gave, concatenated over the rows."""
    table, labels = {}, []
    for row, images in inputs.items():
        out = model.defend(images, seed=seed)
        table[row] = {"accuracy": round(float(np.mean(out["label"] == y)), 4),
                      "rejected": round(float(np.mean(out["rejected"])), 4)}
        labels.append(np.asarray(out["label"]))
    return table, np.concatenate(labels)


def accuracy_move(table, reference):
    """The largest change of accuracy between two `policy_accuracy` tables, over their rows."""
    return round(max(abs(table[row]["accuracy"] - reference[row]["accuracy"]) for row in reference), 4)


def recommended_policy(result):
    """The fastest policy at the largest batch among float32 and those within `MAX_ACCURACY_MOVE`."""
    largest = str(max(result["batches"]))
    ok = {p: f for p, f in result["policies"].items() if "error" not in f
          and (p == "float32" or f.get("accuracy_move", 1.0) <= MAX_ACCURACY_MOVE)}
    return max(ok, key=lambda p: ok[p]["images_per_s"][largest]) if ok else None


def run(name, source=None, batches=(1, 128), policies=("float32",), seconds=2.0, max_runs=50, exported=True,
        update_card=False, accuracy_n=0, eps=0.3, ops=False, **overrides):
    """Measures entry ``name`` (or the defense in folder ``source``) under each dtype policy.

    Args:
        name: a registered entry.
        source: its weights and card from this folder (a defense you trained: its ``export/``).
        batches: batch sizes for images/s (the largest also sets the FLOP-rate figure).
        policies: Keras dtype policies, e.g. ("float32", "mixed_bfloat16").
        seconds, max_runs: how long each timing repeats.
        exported: also time one image through the exported SavedModel.
        update_card: store the result in the card's ``measured.cost``.
        accuracy_n: labelled eval images for each policy's accuracy (0: not measured).
        eps: Linf budget of the accuracy measurement's gray-box attacks.
        ops: also profile the served graph op by op at the largest batch (needs ``exported``).
        **overrides: inference settings, as for `tfdefense.load`.

    Returns:
        The JSON-ready result (see the module docstring).

    Raises:
        ValueError: an unknown policy or a batch size below 1.
    """
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown dtype policy {unknown}; choose from {list(POLICIES)}.")
    batches = sorted({int(b) for b in batches})
    if not batches or batches[0] < 1:
        raise ValueError(f"batch sizes must be >= 1, got {batches}.")
    if update_card:
        store.card_folder(name, source)  # a read-only card fails now, not after the timings
    matmul = {"float32": round(timing.matmul_gflops("float32"), 1), "bfloat16": round(timing.matmul_gflops("bfloat16"), 1)}
    result = {"name": name, "batches": batches, "overrides": overrides, "matmul_gflops": matmul,
              "machine": {"cpus": os.cpu_count(), "processor": platform.machine(), "tensorflow": tf.__version__,
                          "keras": keras.__version__}, "policies": {}}
    reference, accuracy_inputs, accuracy_reference = None, None, None
    if accuracy_n:  # missing data fails here, before any timing
        x_acc, y_acc = labelled_images(name, accuracy_n)
    for policy in progress.bar(policies, desc=f"bench {name}", unit="policy"):
        reset_peak_memory()
        try:
            model = _load(name, source, policy, overrides)
            if "flops_per_image" not in result:
                result["flops_per_image"] = model.flops()
                x, result["images"] = bench_images(model, max(batches))
            figures = measure_policy(model, x, batches, None, seconds, max_runs, exported,
                                     None if policy == "float32" else reference, ops=ops)
            if accuracy_n:
                if accuracy_inputs is None:
                    classifier = model if policy == "float32" else _load(name, source, "float32", overrides)
                    accuracy_inputs = {"clean": x_acc, **calibration.gray_box_examples(
                        classifier, x_acc, y_acc, eps=eps, seed=0, attacks_used=ACCURACY_ATTACKS)}
                    result["accuracy_images"] = {"n": int(len(y_acc)), "eps": eps, "split": "eval", "seed": 0,
                                                 "attacks": "gray-box, crafted on the float32 classifier"}
                figures["accuracy"], accuracy_labels = policy_accuracy(model, accuracy_inputs, y_acc)
                if policy == "float32":
                    accuracy_reference = (figures["accuracy"], accuracy_labels)
                elif accuracy_reference is not None:
                    figures["accuracy_move"] = accuracy_move(figures["accuracy"], accuracy_reference[0])
                    figures["labels_changed"] = int(np.sum(accuracy_labels != accuracy_reference[1]))
        except (ValueError, TypeError, RuntimeError, tf.errors.OpError) as error:
            # A policy an entry cannot run (FM-Defense's prior once failed to build under mixed_bfloat16) is
            # recorded and the others still measured; the run fails only when no policy ran.
            result["policies"][policy] = {"error": f"{type(error).__name__}: {error}"[:500]}
            continue
        labels = figures.pop("labels")
        if policy == "float32":
            reference = labels
        figures["peak_memory_mb"] = peak_memory_mb()
        result["policies"][policy] = figures
    if all("error" in figures for figures in result["policies"].values()):
        raise RuntimeError(f"bench {name}: no policy ran: {json.dumps(result['policies'])}")
    if accuracy_reference is not None:
        result["recommended_policy"] = recommended_policy(result)
    if update_card:
        cards.update_card(store.card_folder(name, source),
                          lambda card: card.setdefault("measured", {}).__setitem__("cost", result))
    return result
