"""Every entry's cost to serve, one markdown row each, read from the cards' ``measured.cost``
(what ``tfdefense bench NAME --update-card`` stored).

    python benchmarks/cost_table.py [--names=a,b]

Columns: GFLOP per image; float32 images/s at batch 1 and at the largest batch; the fraction of the fp32
matmul rate measured beside the timings, for all of the pipeline with that rate beside it (machines of one
kind differ: read absolute images/s against it), and for its convolutions and matmuls alone in the
served graph's op profile; the op that takes most of the served graph's time; bfloat16 images/s;
bfloat16's largest accuracy move against float32 and the policy the card recommends; one image's p50
in-process and through the exported SavedModel; the export's size over the float32 weights'.
"""

import argparse

from tfdefense.zoo import registry, store


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _f(value, fmt):
    return "-" if value is None else format(value, fmt)


def row(name, cost):
    f32, bf16 = cost["policies"].get("float32", {}), cost["policies"].get("mixed_bfloat16", {})
    largest = str(max(cost["batches"]))
    latency = _get(f32, "latency_ms", "first_image") or {}
    profile = f32.get("op_profile") or {}
    top = (profile.get("ops") or [{}])[0]
    size = f32.get("export") or {}
    whole = size["saved_model_mb"] / size["weights_mb"] if size.get("weights_mb") else None
    move = _get(bf16, "accuracy_move")
    return (f"| {name} | {cost['flops_per_image']['total'] / 1e9:.3g} "
            f"| {_f(_get(f32, 'images_per_s', '1'), ',.1f')} / {_f(_get(f32, 'images_per_s', largest), ',.1f')} "
            f"| {_f(f32.get('fraction_of_fp32_matmul'), '.2f')} ({_f(f32.get('fp32_matmul_gflops'), '.0f')}) "
            f"| {_f(_get(profile, 'flop_ops', 'fraction_of_fp32_matmul'), '.2f')} "
            f"| {top.get('op', '-').replace('_MklNative', '').replace('_Mkl', '')} {_f(top.get('share'), '.0%')} "
            f"| {_f(_get(bf16, 'images_per_s', largest), ',.1f')} "
            f"| {'-' if move is None else f'{100 * move:.1f} pt'}, {cost.get('recommended_policy', '-')} "
            f"| {_f(_get(latency, 'in_process', 'p50'), '.1f')} / {_f(_get(latency, 'exported', 'p50'), '.1f')} "
            f"({_f(latency.get('exported_over_in_process'), '.2f')}) "
            f"| {_f(size.get('variables_to_weights'), '.2f')}, {_f(whole, '.2f')} |")


HEADER = ("| entry | GFLOP / image | float32 images/s, batch 1 / largest "
          "| fraction of fp32 matmul (its GFLOP/s) "
          "| convolutions and matmuls alone | top op (share of time) | bfloat16 images/s, largest batch "
          "| bfloat16 accuracy move, served as | one image p50 ms, in-process / exported (ratio) "
          "| export / weights: variables, whole |\n|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", help="entries, comma-separated (default: every entry with a benched card)")
    args = p.parse_args(argv)
    names = args.names.split(",") if args.names else registry.list_models()
    print(HEADER)
    for name in names:
        cost = _get(store.card(name), "measured", "cost")  # None: not published, or never benched
        if cost:
            print(row(name, cost))


if __name__ == "__main__":
    main()
