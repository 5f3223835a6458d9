"""What int8 storage of PuVAE's big dense kernel would cost, before anyone ships it.

The trunk file (about 49 MB, float16, one copy of each variable) is 99.6% one
25088 x 1024 kernel, which float16 cannot shrink further. This rounds that
kernel to int8 with one float32 scale per output column (about 25.7 MB) in
the loaded model and measures the defended model (detector and purifier as
shipped) on clean and gray-box FGSM images (eps 0.3, crafted on classifier A)
before and after. Prints one JSON line; nothing is written or published.

    python benchmarks/puvae_trunk_int8.py --name=puvae_mnist --n=1000
"""

import json
import os

from absl import app, flags

flags.DEFINE_string("name", "puvae_mnist", "puvae_mnist or puvae_fmnist.")
flags.DEFINE_integer("n", 1000, "First n images of the test split.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    import tfdefense
    from tfdefense import datasets, evaluation
    from tfdefense.evaluation import attacks
    from tfdefense.zoo import registry

    model = tfdefense.load(FLAGS.name)
    dense = model.purifier.trunk.get_layer("trunk_fc1_image")
    x, y = datasets.load(registry.get_entry(FLAGS.name)["metadata"]["dataset"], "test")
    x, y = x[:FLAGS.n], y[:FLAGS.n]
    x_fgsm = np.asarray(attacks.fgsm(model.classifier, x, y, eps=0.3))
    result = {"model": FLAGS.name, "n": int(len(x)), "split": "test, first n"}

    def measure():
        return {"clean": evaluation.accuracy(model, x, y), "gray_fgsm": evaluation.accuracy(model, x_fgsm, y)}

    result["float16_stored"] = measure()
    w = dense.kernel.numpy()
    scale = np.abs(w).max(axis=0, keepdims=True) / 127.0
    dense.kernel.assign((np.clip(np.round(w / scale), -127, 127) * scale).astype(w.dtype))
    result["int8_per_column"] = measure()
    result["kernel_mb"] = {"float16": round(w.size * 2 / 1e6, 1), "int8": round((w.size + scale.size * 4) / 1e6, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
