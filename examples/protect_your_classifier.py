"""Protect your own classifier on your own 32x32 RGB images: train MagNet and APE-GAN for it,
evaluate gray-box and white-box, export, and check the served graph gives the same labels.

    python examples/protect_your_classifier.py [--workdir=runs/yours] [--tiny]

The same with the command line, once the data and classifier are files:

    tfdefense train magnet --data=yours.npz --classifier=classifier.keras --workdir=runs/magnet_yours
    tfdefense evaluate --model=runs/magnet_yours/export --attacks=fgsm,pgd --threat=gray,white
    tfdefense export --model=runs/magnet_yours/export serving/

The images here are generated (a coloured square whose position is the class, on noise), since no
colour dataset is reachable offline; point --data at your .npz, class folder or tfds:NAME instead.
"""

import argparse
import os

import keras
import numpy as np
import tensorflow as tf

import tfdefense
from tfdefense import datasets
from tfdefense.evaluation import harness
from tfdefense.zoo import export


def make_images(n, size=32, classes=4, seed=0):
    """uint8 [n, size, size, 3] images: a bright square in one of ``classes`` corners (the label) on noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 90, (n, size, size, 3))
    half = size // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * half + 4:r * half + half - 4, c * half + 4:c * half + half - 4, label % 3] = 230
    return x.astype(np.uint8), y


def your_classifier(shape, classes):
    """A small Keras CNN ending in a softmax, as many production classifiers do."""
    return keras.Sequential([keras.Input(shape), keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
                             keras.layers.Conv2D(32, 3, strides=2, activation="relu"), keras.layers.Flatten(),
                             keras.layers.Dense(classes, activation="softmax")], name="yours")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="runs/yours")
    parser.add_argument("--tiny", action="store_true", help="a few steps of everything (the test run)")
    args = parser.parse_args(argv)
    n, epochs, steps, n_eval = (700, 1, 3, 16) if args.tiny else (7000, 3, None, 200)
    os.makedirs(args.workdir, exist_ok=True)

    data = os.path.join(args.workdir, "yours.npz")
    x, y = make_images(n)
    np.savez(data, x=x, y=y)
    x_train, y_train = datasets.load(data, "train")
    classifier = your_classifier(x_train.shape[1:], 4)
    classifier.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    classifier.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    classifier.save(os.path.join(args.workdir, "classifier.keras"))

    results = {}
    for family in ("magnet", "apegan"):
        model = tfdefense.defend(os.path.join(args.workdir, "classifier.keras"), family, data=data,
                                 workdir=os.path.join(args.workdir, family), epochs=epochs, steps_per_epoch=steps,
                                 batch_size=32, verbose=0)
        folder = os.path.join(args.workdir, family, "export")
        report = harness.run(model.name, attacks=("fgsm", "pgd"), threats=("gray", "white"), n=n_eval,
                             source=folder, params={"pgd": {"nb_iter": 5 if args.tiny else 40}})
        served = tf.saved_model.load(export.export(model, os.path.join(args.workdir, "serving"), model.name))
        x_eval, _ = datasets.load(data, "eval")
        labels = served.signatures["serving_default"](images=tf.constant(x_eval[:n_eval]))["label"].numpy()
        same = bool(np.array_equal(labels, model.defend(x_eval[:n_eval])["label"]))
        results[family] = {"clean": report.clean["accuracy_defended"], "served_labels_match": same,
                           **{f"{r.threat}_{r.attack}": r.accuracy_defended for r in report.results}}
        print(family, results[family])
    return results


if __name__ == "__main__":
    main()
