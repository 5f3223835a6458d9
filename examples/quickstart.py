"""Protect a classifier with AE-GAN+rs and look at what it did.

    python examples/quickstart.py [--model=aegan_mnist] [--n=8]
"""

import argparse

import numpy as np

import tfdefense
from tfdefense import datasets
from tfdefense.evaluation import attacks
from tfdefense.zoo import registry


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="aegan_mnist")
    parser.add_argument("--n", type=int, default=8)
    args = parser.parse_args()

    model = tfdefense.load(args.model)                      # sha256-checked pretrained weights
    x, y = datasets.load(registry.get_entry(args.model)["metadata"]["dataset"], "dev")
    x, y = x[:args.n], y[:args.n]

    # A gray-box attack: crafted on the bare classifier, unaware of the defense.
    x_adv = attacks.fgsm(model.classifier, x, y, eps=0.3)
    bare = np.argmax(model.classifier(x_adv, training=False), axis=1)
    out = model.defend(x_adv)                               # logits, label, purified, score, is_adversarial
    print("true labels      ", y.tolist())
    print("bare classifier  ", bare.tolist())
    print("defended         ", out["label"].tolist())
    print("flagged by detector", out["is_adversarial"].astype(int).tolist())
    print("detector scores  ", np.round(out["score"], 3).tolist())


if __name__ == "__main__":
    main()
