"""One evaluation split across workers, and the shards merged back into the report one process writes.

An evaluation walks its images in blocks of ``block_size`` (256, the batch
every attack already uses). Block ``b`` draws all of its randomness (the
attack's random start, the defense's noise, EOT's seeds, the k queries) from
`block_seed` of the run's seeds and ``b``, so an image's numbers depend on the
run's seed and the image's index only, never on how many workers there are
or which of them ran it. Block 0 keeps the run's own seeds: any evaluation of
at most 256 images is exactly what it was before sharding existed.

``tfdefense evaluate NAME --shard=I/K --output_dir=DIR_I`` runs shard I of K:
a contiguous run of blocks. Each shard writes its partial report and, beside
it, ``outcomes.npz``: for every result, each image's index and what happened
to it (right, flagged, rejected, right under k queries, distortion).
``tfdefense merge DIR_0 ... DIR_K-1 --output_dir=DIR`` checks that the shards
are one run (same model, weights, settings; every shard once) and computes
the report from the concatenated outcomes with the evaluator's own function:
its counts equal those of one process, exactly. Wall time is the workers' sum.

Example:
    >>> from tfdefense.evaluation import shards
    >>> shards.parse("1/4")
    (1, 4)
    >>> shards.blocks_of(1, 4, n=1000, block_size=256)   # images 256..511
    [1]
    >>> block_seed(0, 0), block_seed(0, 1)
    (0, 1000003)
"""

import json
import os

import numpy as np

BLOCK_SIZE = 256
SEED_STRIDE = 1_000_003  # larger than any seed offset a run uses (k queries, EOT samples)
OUTCOMES = "outcomes.npz"


def block_seed(seed, block):
    """The seed that block ``block`` uses where a whole run would use ``seed`` (block 0: ``seed`` itself)."""
    return int((int(seed) + SEED_STRIDE * int(block)) % 2**31)


def parse(spec):
    """``"I/K"`` -> ``(I, K)``, with 0 <= I < K.

    Raises:
        ValueError: anything else.
    """
    try:
        index, count = (int(v) for v in str(spec).split("/"))
    except ValueError:
        raise ValueError(f"--shard must be I/K (e.g. 0/4), got {spec!r}.") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard I/K needs 0 <= I < K, got {spec!r}.")
    return index, count


def blocks_of(index, count, n, block_size=BLOCK_SIZE):
    """The blocks shard ``index`` of ``count`` evaluates among ``n`` images: a contiguous run, the
    blocks spread as evenly as they go (a shard may get none when there are fewer blocks than shards)."""
    total = -(-n // block_size)
    return list(range(index * total // count, (index + 1) * total // count))


def block_slices(blocks, n, block_size=BLOCK_SIZE):
    """``(block, slice)`` for each of ``blocks`` that holds some of the first ``n`` images."""
    return [(b, slice(b * block_size, min((b + 1) * block_size, n))) for b in blocks if b * block_size < n]


def write_outcomes(output_dir, outcomes):
    """Writes ``{result key: {field: per-image array}}`` as ``outcomes.npz`` (keys ``key|field``)."""
    os.makedirs(output_dir, exist_ok=True)
    flat = {f"{key}|{field}": np.asarray(value) for key, fields in outcomes.items() for field, value in fields.items()}
    path = os.path.join(output_dir, OUTCOMES)
    np.savez_compressed(path + ".tmp.npz", **flat)
    os.replace(path + ".tmp.npz", path)  # a killed shard never leaves half a file
    return path


def write_shard(report, output_dir, shard, blocks, block_size=BLOCK_SIZE):
    """Writes the `core.evaluate` report of shard ``(I, K)`` (its ``blocks``) with its outcomes, for `merge`."""
    report.settings["shard"] = {"index": shard[0], "count": shard[1], "block_size": block_size, "blocks": list(blocks),
                                "results": [k for k in report.outcomes if k not in ("clean", "substitute")]}
    write_outcomes(output_dir, report.outcomes)
    report.write(output_dir)
    return report


def read_outcomes(output_dir):
    """The outcomes `write_outcomes` wrote in ``output_dir``."""
    path = os.path.join(output_dir, OUTCOMES)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: is {output_dir} the output_dir of an evaluate --shard run?")
    outcomes = {}
    with np.load(path) as data:
        for name in data.files:
            key, field = name.rsplit("|", 1)
            outcomes.setdefault(key, {})[field] = data[name]
    return outcomes


def _one_run(reports, dirs):
    """The settings every shard shares; raises ValueError naming the shard that differs or is missing."""
    def common(report):
        settings = {k: v for k, v in report.settings.items() if k != "shard"}
        return json.dumps([report.model, report.dataset, report.split, report.seed, settings], sort_keys=True)

    first = common(reports[0])
    for report, folder in zip(reports, dirs):
        if "shard" not in report.settings:
            raise ValueError(f"{folder} is not a shard (its report has no settings.shard): run evaluate --shard=I/K.")
        if common(report) != first:
            raise ValueError(f"{folder} is not the same evaluation as {dirs[0]} (model, data, seed or settings "
                             "differ): merge only the shards of one run.")
    count = reports[0].settings["shard"]["count"]
    seen = sorted(r.settings["shard"]["index"] for r in reports)
    if seen != list(range(count)) or any(r.settings["shard"]["count"] != count for r in reports):
        raise ValueError(f"merge needs each of the {count} shards exactly once, got shards {seen}.")


def merge(dirs, output_dir=None):
    """The report of the whole evaluation from its shards' folders (written to ``output_dir`` if given).

    Raises:
        ValueError: the folders are not exactly the shards of one run.
        FileNotFoundError: a folder has no report.json or outcomes.npz.
    """
    from tfdefense.evaluation import core

    if not dirs:
        raise ValueError("merge needs the output folders of the shards.")
    reports = []
    for folder in dirs:
        path = os.path.join(folder, "report.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} is missing: is {folder} the output_dir of an evaluate --shard run?")
        reports.append(core.Report.read(path))
    _one_run(reports, dirs)
    parts = [read_outcomes(folder) for folder in dirs]
    keys = reports[0].settings["shard"]["results"]
    merged = {}
    for key in [k for k in ["clean", "substitute"] + keys if any(k in p for p in parts)]:
        fields = {field: np.concatenate([p[key][field] for p in parts if key in p])
                  for field in next(p[key] for p in parts if key in p)}
        order = np.argsort(fields["index"], kind="stable")
        fields = {field: value[order] for field, value in fields.items()}
        if not np.array_equal(fields["index"], np.arange(len(fields["index"]))):
            raise ValueError(f"{key}: the shards' images do not cover 0..n-1 exactly once.")
        merged[key] = fields
    seconds = {}
    for report in reports:
        for r in report.results:
            seconds[f"{r.threat}/{r.attack}"] = seconds.get(f"{r.threat}/{r.attack}", 0.0) + r.wall_time_s
    first = reports[0]
    k = first.clean.get("queries_k")  # every shard answered the same k queries (the settings agree)
    settings = {key: v for key, v in first.settings.items() if key != "shard"}
    settings["merged_from"] = {"shards": len(dirs), "block_size": first.settings["shard"]["block_size"]}
    report = core.Report(model=first.model, dataset=first.dataset, split=first.split,
                         n=int(len(merged["clean"]["index"])), seed=first.seed,
                         clean=core.summarize_clean(merged["clean"], k), results=[], settings=settings,
                         substitute=dict(first.substitute))
    if "substitute" in merged:
        report.substitute["agreement_with_defended_model"] = round(float(np.mean(merged["substitute"]["agrees"])), 4)
    params = {f"{r.threat}/{r.attack}": r.params for rep in reports for r in rep.results}
    for key in keys:
        threat, attack = key.split("/", 1)
        if len(merged[key]["index"]):
            report.results.append(core.summarize(attack, threat, params[key], merged[key], seconds.get(key, 0.0), k))
    if output_dir:
        report.write(output_dir)
    return report
