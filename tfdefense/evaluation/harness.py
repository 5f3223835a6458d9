"""`tfdefense evaluate` as a library call: one pretrained model, every threat
model, a report people can read, and optionally the numbers in its card.

Example:
    >>> from tfdefense import harness
    >>> report = harness.run("aegan_mnist", attacks=("fgsm",), threats=("gray",), n=100,
    ...                      output_dir="/tmp/report")                     # doctest: +SKIP
"""

import json
import os

import numpy as np

from tfdefense import datasets, evaluation
from tfdefense.evaluation import blackbox, plots, sanity, shards
from tfdefense.zoo import cards, registry, store


def sample(dataset, n, seed, split="eval"):
    """``n`` images of ``split`` chosen by ``seed`` (all of it when n is None)."""
    x, y = datasets.load(dataset, split)
    if n is not None and n < len(x):
        index = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
        x, y = x[index], y[index]
    return x, y


def run(name, *, attacks=("fgsm", "pgd", "cw"), threats=("gray",), n=1000, eps=0.3, seed=0, params=None,
        black_box=None, white_box=None, output_dir=None, sweep=0, sweep_n=200, sweep_range=(0.0, 0.4), sweep_attacks=("fgsm", "pgd"),
        run_sanity=False, update_card=False, split="eval", source=None, data=None,
        k_queries=evaluation.K_QUERIES, shard=None, substitute=None, block_size=shards.BLOCK_SIZE, **overrides):
    """Evaluates a registered model and writes its report.

    Args:
        name: registered model name.
        attacks, threats, eps, seed, params, black_box, white_box: see `evaluation.evaluate`.
        n: images drawn from ``split`` (default: the 9850 test images outside
            the black-box holdout).
        output_dir: where report.json, report.md and the PNG figures go.
        sweep: number of eps values in ``sweep_range`` for the accuracy-vs-eps
            curve (gray-box ``sweep_attacks`` on ``sweep_n`` images); 0 skips it.
        run_sanity: run the built-in sanity checks on this many images (True: 100; 0 or False: none),
            with the run's ``white_box`` settings.
        update_card: write the measured numbers into the model card (the one
            in ``source`` when given).
        source: evaluate the weights and card in this folder (a training run's
            ``export/``) instead of the published ones.
        data: draw the images from this `tfdefense.datasets` source instead of the
            model's own dataset (same image shape).
        k_queries: a random defense is also scored answering each input under k seeds.
        shard: ``"I/K"`` (or ``(I, K)``): evaluate shard I of K only, into ``output_dir`` with its
            ``outcomes.npz``, for `shards.merge` (`tfdefense.evaluation.shards`).
        substitute: a folder holding the black-box substitute: used when it is there, else trained and
            saved there (a sharded black-box run needs it there already: `train_substitute`).
        block_size: images per seeded block (`shards.block_seed`).
        **overrides: inference settings for `tfdefense.load`.

    Returns:
        The `evaluation.Report`.
    """
    entry = registry.get_entry(name)
    dataset = data or entry["metadata"]["dataset"]
    if update_card:
        store.card_folder(name, source)  # a read-only card fails now, not after the attacks
    if shard is not None:
        shard = shards.parse(shard) if isinstance(shard, str) else tuple(shard)
        if not output_dir:
            raise ValueError("--shard needs --output_dir: `tfdefense merge` reads each shard's folder.")
        if sweep or run_sanity or update_card:
            raise ValueError("--shard evaluates the attacks only: run --sweep and --sanity in one process, and "
                             "pass --update-card to `tfdefense merge`.")
        if "black" in threats and not substitute:
            raise ValueError("a sharded black-box run attacks one shared substitute: train it once with "
                             "`tfdefense substitute NAME DIR`, then pass --substitute=DIR to every shard.")
    model = registry.load(name, source, **overrides)
    weights = measured_on(model.card)
    x, y = sample(dataset, n, seed, split)
    blocks = None
    if shard is not None:
        blocks = shards.blocks_of(*shard, len(x), block_size)
        if not blocks:
            raise ValueError(f"shard {shard[0]}/{shard[1]} has no images: {len(x)} images make "
                             f"{-(-len(x) // block_size)} blocks of {block_size}; use at most that many shards.")
    holdout = datasets.load(dataset, "holdout")[0] if "black" in threats else None
    sub = None
    if substitute and "black" in threats:
        about = substitute_about(name, weights, dataset, seed, black_box)
        if shard is not None or os.path.exists(os.path.join(substitute, "substitute.json")):
            sub = blackbox.load_substitute(substitute, about)
        else:
            sub = train_substitute(model, substitute, holdout, about, seed, black_box)
    report = evaluation.evaluate(model, x, y, attacks=attacks, threats=threats, eps=eps, seed=seed, params=params,
                                 name=name, dataset=dataset, split=split, holdout=holdout,
                                 black_box=black_box, white_box=white_box or None, k_queries=k_queries,
                                 blocks=blocks, block_size=block_size, substitute=sub,
                                 on_result=_writer(output_dir, overrides, weights) if output_dir else None)
    report.settings.update(overrides=overrides, weights=weights)
    if source:
        report.settings["source"] = source
    if shard is not None:
        return shards.write_shard(report, output_dir, shard, blocks, block_size)  # no figures, no card
    if output_dir:  # the numbers first: a failure while drawing figures must not lose them
        report.write(output_dir)
    figures = {}
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        rows = {"clean": x[:8]}
        for key, x_adv in report.examples.items():
            rows[key] = x_adv
            rows[f"{key} purified"] = model.defend(x_adv)["purified"]
        figures["examples.png"] = plots.image_grid(os.path.join(output_dir, "examples.png"), rows,
                                                   title=f"{name}: clean, adversarial and purified images")
    if sweep:
        values = np.linspace(float(sweep_range[0]), float(sweep_range[1]), sweep)
        curves = {}
        for attack in sweep_attacks:
            result = evaluation.eps_sweep(model, x[:sweep_n], y[:sweep_n], values, attack=attack, seed=seed)
            report.eps_sweep[attack] = result
            curves[f"{attack} defended"] = result["defended"]
            if "defended_or_rejected" in result:
                curves[f"{attack} defended or rejected"] = result["defended_or_rejected"]
            curves[f"{attack} undefended"] = result["undefended"]
            if output_dir:
                report.write(output_dir)
        if output_dir:
            figures["accuracy_vs_eps.png"] = plots.accuracy_vs_eps(
                os.path.join(output_dir, "accuracy_vs_eps.png"), values, curves,
                title=f"{name}: gray-box accuracy vs eps (n={min(sweep_n, len(x))})")
    report.detector, scores = evaluation.detector_report(model, x[:sweep_n], y[:sweep_n])
    for d in model.detectors:  # the paper's Figures 3 and 6 for AE-GAN+rs (its L1 detector)
        if output_dir and d.name in scores:
            figures[f"detector_{d.name}.png"] = plots.detector_figure(
                os.path.join(output_dir, f"detector_{d.name}.png"), *scores[d.name], d.threshold, d.name)
    if run_sanity:
        n_sanity = 100 if run_sanity is True else int(run_sanity)
        report.sanity = sanity.run(model, x, y, eps=eps, seed=seed, n=n_sanity, white_box=white_box or None)
        report.settings["sanity"] = {"n": min(n_sanity, len(x)), "white_box": white_box or {}}
    report.figures = sorted(figures)
    if output_dir:
        report.write(output_dir)
    if update_card:
        write_to_card(name, report, source)
    return report


def substitute_about(name, weights, dataset, seed, black_box=None):
    """What a saved substitute was trained against; a shard refuses one trained for anything else."""
    return json.loads(json.dumps({"model": name, "weights": weights, "dataset": dataset, "seed": seed,
                                  "settings": {**evaluation.BLACK_BOX_DEFAULTS, **(black_box or {})}}))


def train_substitute(model, path, holdout, about, seed=0, black_box=None):
    """Trains the black-box substitute of ``model`` on ``holdout`` and saves it to ``path`` (see `run`)."""
    sub = evaluation.train_substitute(model, holdout, seed, black_box)
    blackbox.save_substitute(sub, path, about)
    return sub


def substitute_for(name, path, *, seed=0, black_box=None, source=None, data=None, **overrides):
    """`tfdefense substitute`: trains and saves, once, the substitute the shards of a black-box run share."""
    entry = registry.get_entry(name)
    dataset = data or entry["metadata"]["dataset"]
    model = registry.load(name, source, **overrides)
    about = substitute_about(name, measured_on(model.card), dataset, seed, black_box)
    return train_substitute(model, path, datasets.load(dataset, "holdout")[0], about, seed, black_box)


def measured_on(card):
    """What a report was measured on: the card's weight files (sha256), how far
    training got and the inference settings the card held ({} without a card)."""
    if not card:
        return {}
    training = card.get("training") or {}
    return {"files": card.get("files", {}), "epochs_completed": training.get("epochs_completed"),
            "scheduled_epochs": training.get("scheduled_epochs"), "inference": card.get("inference", {})}


def _writer(output_dir, overrides, weights):
    """Writes the report after each attack, its inference overrides and weights included (a killed run keeps them)."""
    def write(report):
        report.settings.update(overrides=overrides, weights=weights)
        report.write(output_dir)
    return write


def write_to_card(name, report, folder=None):
    """Stores a report's measured robustness in the card of ``name`` (or the card in ``folder``)."""
    return cards.write_report(store.card_folder(name, folder), report)
