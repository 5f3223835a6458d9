"""Throughput of AE-GAN+rs latent search on this machine, printed as JSON.

Measures purified images/s at several batch sizes for L search steps, the
FLOPs per purified image (counted from layer shapes: TensorFlow's profiler
misses transposed convolutions), and the
machine's 2048x2048 matmul rate in the same run, in float32 and (where the
CPU has it) mixed_bfloat16. No XLA: on these CPUs it is about 3x slower.

    python benchmarks/purification_speed.py [--steps=15] [--batches=1,32,128] [--model=aegan_mnist]

Uses the pretrained decoder when it is in saved_models/, else a randomly
initialised one of the same architecture (speed does not depend on weights).
"""

import json
import os
import platform

from absl import app, flags

flags.DEFINE_integer("steps", 15, "Search steps L.")
flags.DEFINE_string("batches", "1,32,128", "Batch sizes.")
flags.DEFINE_string("model", "aegan_mnist", "Registered AE-GAN entry.")
flags.DEFINE_float("min_seconds", 3.0, "Time each measurement at least this long.")
flags.DEFINE_string("policies", "float32,mixed_bfloat16", "Dtype policies to measure.")
flags.DEFINE_boolean("update_card", False, "Store the measured throughput in the model card.")
flags.DEFINE_string("output", None, "Also write the JSON to this file.")
flags.DEFINE_boolean("profile_layers", True, "Time each decoder layer (forward + input gradient, fp32, "
                     "largest batch) to show where the search spends its time.")
FLAGS = flags.FLAGS


def _seconds(fn, min_seconds):
    """Median seconds per call of ``fn`` after a warm-up (the package's timer, as `tfdefense bench` uses)."""
    import numpy as np

    from tfdefense.utils import timing

    return float(np.median(timing.timings(fn, min_seconds, max_runs=1000)))


def layer_profile(decoder, batch, gflops_matmul, min_seconds):
    """Per decoder layer: ms for forward + gradient w.r.t. its input on one
    batch (what one search step costs in that layer), and its GFLOP/s."""
    import numpy as np
    import tensorflow as tf

    from tfdefense.defense import cost

    h = tf.constant(np.random.default_rng(0).uniform(-1, 1, (batch, decoder.inputs[0].shape[-1])), tf.float32)
    rows = []
    for layer in decoder.layers:
        @tf.function
        def step(v, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(v)
                out = layer(v, training=False)
                loss = tf.reduce_sum(tf.square(tf.cast(out, tf.float32)))
            return out, tape.gradient(loss, v)

        seconds = _seconds(lambda v=h, step=step: step(v)[1].numpy(), min_seconds / 4)
        per_image = 2 * cost.layer_flops(layer)  # forward + input gradient
        rate = per_image * batch / seconds / 1e9
        rows.append({"layer": layer.name, "ms": round(1e3 * seconds, 2), "flops_per_image": per_image,
                     "gflops_per_s": round(rate, 1), "fraction_of_matmul_rate": round(rate / gflops_matmul, 3)})
        h = step(h)[0]
    total = sum(r["ms"] for r in rows)
    for r in rows:
        r["share_of_time"] = round(r["ms"] / total, 3)
    return rows


def build_purifier(name, steps):
    """The pretrained model's own purifier (calibrated settings), or a random-init one."""
    import tfdefense
    from tfdefense.zoo import registry
    from tfdefense.defense import networks
    from tfdefense.purification import LatentSearchPurifier

    try:
        return tfdefense.load(name, steps=steps).purifier, "pretrained"
    except tfdefense.WeightsError:
        config = registry.get_entry(name)["config"]
        encoder = networks.encoder(config["latent_dim"], config["filters"])
        decoder = networks.decoder(config["latent_dim"], config["filters"])
        return LatentSearchPurifier(decoder, encoder, steps=steps), "random init (no pretrained weights here)"


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from tfdefense.defense import cost
    from tfdefense.utils import timing

    batches = [int(b) for b in FLAGS.batches.split(",")]
    result = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "tensorflow": tf.__version__, "xla": False}, "steps": FLAGS.steps, "policies": {}}
    for policy in FLAGS.policies.split(","):
        keras.config.set_dtype_policy(policy)
        purifier, source = build_purifier(FLAGS.model, FLAGS.steps)
        compute = "bfloat16" if "bfloat16" in policy else "float32"
        gflops = timing.matmul_gflops(compute, FLAGS.min_seconds)
        flops = cost.search_flops(purifier.decoder, purifier.encoder, purifier.steps, purifier.restarts)
        entry = {"decoder": source, "matmul_2048_gflops": round(gflops, 1),
                 "flops_per_image": int(flops), "by_batch": {}}
        for batch in batches:
            x = tf.constant(np.random.default_rng(0).random((batch, 28, 28, 1), dtype=np.float32))
            seconds = _seconds(lambda: purifier(x)["images"].numpy(), FLAGS.min_seconds)
            rate = batch / seconds
            entry["by_batch"][str(batch)] = {
                "images_per_s": round(rate, 1), "achieved_gflops": round(rate * flops / 1e9, 1),
                "fraction_of_matmul_rate": round(rate * flops / 1e9 / gflops, 3)}
        if FLAGS.profile_layers and policy == "float32":
            entry["layers_at_batch"] = {"batch": max(batches),
                                        "layers": layer_profile(purifier.decoder, max(batches), gflops,
                                                                FLAGS.min_seconds)}
        result["policies"][policy] = entry
    keras.config.set_dtype_policy("float32")
    print(json.dumps(result, indent=2))
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(result, f, indent=2)
    if FLAGS.update_card:
        from tfdefense.zoo import cards, store

        def change(card):
            card.setdefault("measured", {})["throughput"] = {
                policy: {"steps": FLAGS.steps, "images_per_s_by_batch": {b: v["images_per_s"] for b, v in e["by_batch"].items()},
                         "fraction_of_matmul_rate_by_batch": {b: v["fraction_of_matmul_rate"]
                                                              for b, v in e["by_batch"].items()},
                         "matmul_2048_gflops": e["matmul_2048_gflops"], "flops_per_image": e["flops_per_image"]}
                for policy, e in result["policies"].items()}
            card["measured"]["throughput"]["machine"] = result["machine"]
        cards.update_card(store.card_folder(FLAGS.model), change)


if __name__ == "__main__":
    app.run(main)
