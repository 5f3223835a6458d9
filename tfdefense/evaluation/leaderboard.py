"""One page that puts every pretrained defense side by side, from the model cards.

Every figure comes from a card's ``measured.robustness`` (written by
`tfdefense evaluate --update-card` from a report the package wrote), with the
paper's figure from the card's ``reported`` field beside it, and the protocol
(n, seed, split) of each; rows whose protocol differs from the standard one
(n >= 1000, seed 0, the eval split) are marked.

Example:
    >>> from tfdefense import leaderboard
    >>> leaderboard.write("docs/leaderboard.md")      # doctest: +SKIP
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tfdefense.zoo import cards, registry, store  # noqa: E402

STANDARD = {"n": 1000, "seed": 0, "split": "eval"}
REPORTED_KEYS = cards.REPORTED_KEYS
COLUMNS = (("gray_box", "fgsm"), ("gray_box", "pgd"), ("black_box", "fgsm"))


def _cell(result, paper):
    if result is None:
        return "-"
    text = f"{result['accuracy_defended']:.3f}"
    if paper is not None:
        text += f" ({paper})"
    return text


def _nonstandard(result):
    return (result["n"] < STANDARD["n"] or result.get("seed") != STANDARD["seed"]
            or result.get("split") != STANDARD["split"])


# Card sections that record an attacker's choice, not a change of the defense (`cards.result_section`).
ATTACKER_CHOICES = ("bpda", "eot")


def strongest_white(white):
    """(attack, result) with the lowest accuracy among the card's white-box Linf attacks at the standard
    eps (not "fgsm_0.4", not the unbounded L2 attacks CW and DeepFool), or None."""
    linf = {k: r for k, r in white.items() if abs(r["params"].get("eps", -1) - cards.DEFAULT_EPS) < 1e-9}
    return min(linf.items(), key=lambda kv: kv[1]["accuracy_defended"]) if linf else None


def white_results(robustness):
    """The published model's white-box results: its ``white_box`` section and the sections of the attacker's
    own choices on the same model: BPDA through a declared surrogate (``white_box_bpda="surrogate"``, named
    ``<attack> (bpda surrogate)``) and a random defense attacked through one noise draw
    (``white_box_eot=1``, named ``<attack> (eot 1)``). Sections with changed inference settings are another
    model and stay out."""
    out = dict(robustness.get("white_box", {}))
    for choice in ATTACKER_CHOICES:
        prefix = f"white_box_{choice}="
        for section, results in robustness.items():
            if section.startswith(prefix):
                how = section[len(prefix):].strip('"')
                out.update({f"{attack} ({choice} {how})": r for attack, r in results.items()})
    return out


def rows(models=()):
    """One dict per entry whose card holds measured robustness, then one per defense folder in ``models``
    (defenses you trained: their ``export/`` folders)."""
    named = [(name, store.card(name)) for name in registry.list_models()]
    named += [(card["name"], card) for card in (cards.read_card(folder, verify=False) for folder in models)]
    return [row for row in (_row(name, card) for name, card in named) if row]


def _row(name, card):
    robustness = (card or {}).get("measured", {}).get("robustness")
    if not robustness:
        return None
    clean = card["measured"].get("clean_accuracy_defended") or card["measured"].get("clean_accuracy")
    strongest = strongest_white(white_results(robustness))
    row = {"name": name, "dataset": card["dataset"], "clean": clean, "results": {}, "reported": {},
           "strongest_white": strongest, "epochs": cards.epochs_trained(card.get("training", {})),
           "cost": cost_summary(card["measured"].get("cost"))}
    for threat, attack in COLUMNS:
        row["results"][(threat, attack)] = robustness.get(threat, {}).get(attack)
        row["reported"][(threat, attack)] = card.get("reported", {}).get(threat, {}).get(REPORTED_KEYS[attack])
    if strongest:
        row["reported"]["white"] = card.get("reported", {}).get("white_box", {}).get(
            REPORTED_KEYS.get(strongest[0], strongest[0]))
    return row


def cost_summary(cost):
    """(images/s at the largest batch in float32, that batch, GFLOP per image) of a card's ``measured.cost``
    (written by ``tfdefense bench --update-card``), or None."""
    float32 = (cost or {}).get("policies", {}).get("float32")
    if not float32:
        return None
    batch = max(float32["images_per_s"], key=int)
    return float32["images_per_s"][batch], int(batch), cost["flops_per_image"]["total"] / 1e9


def _cost_cell(cost):
    if cost is None:
        return "-"
    images_per_s, batch, gflop = cost
    return f"{images_per_s:,.0f} img/s (b={batch}), {gflop:.3g} GFLOP"


def to_markdown(table):
    lines = ["# tfdefense leaderboard", "",
             "Accuracy of the final label at Linf eps 0.3, classifier A (a rejected input counts only if its "
             "label is right: rejecting is not a success here; the cards give 'defended or rejected' beside it), "
             "from each model card; the paper's figure in brackets. White-box: the lowest accuracy among the "
             "adaptive Linf attacks run at eps 0.3 (exact gradient or BPDA + EOT as the defense declares; `pgd_detector` is PGD "
             "with the detectors in the loss). Standard protocol: n >= 1000, seed 0, the `eval` split; a "
             "dagger marks a cell that departs from it (see the card). Cost: images/s of the whole pipeline in "
             "float32 at the largest batch `tfdefense bench` ran, and FLOPs per purified image counted from the "
             "layers, on the machine the card names.", "",
             "| model | dataset | epochs | clean | gray FGSM | gray PGD | black FGSM (substitute B) "
             "| strongest white-box | cost | n, seed |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        cells = []
        for key in COLUMNS:
            result = row["results"][key]
            cells.append(_cell(result, row["reported"][key]) + (" †" if result and _nonstandard(result) else ""))
        white = "-"
        if row["strongest_white"]:
            attack, result = row["strongest_white"]
            white = f"{_cell(result, row['reported'].get('white'))} {attack}" + (" †" if _nonstandard(result) else "")
        clean = "-"
        if row["clean"]:
            clean = f"{row['clean']['value']:.3f}" + (" †" if _nonstandard({"seed": 0, "split": "eval", **row["clean"]})
                                                      else "")
        protocol = sorted({(r["n"], r.get("seed")) for r in row["results"].values() if r})
        lines.append(f"| `{row['name']}` | {row['dataset']} | {row['epochs'][0]}/{row['epochs'][1]} | {clean} | "
                     + " | ".join(cells) + f" | {white} | {_cost_cell(row['cost'])} | "
                     f"{'; '.join(f'{n}, {s}' for n, s in protocol)} |")
    return "\n".join(lines) + "\n"


DATASETS = (("mnist", "MNIST"), ("fashion_mnist", "Fashion-MNIST"))
BARS = (("clean", "clean", "#9ecae1"), ("gray FGSM", ("gray_box", "fgsm"), "#4292c6"),
        ("strongest white-box", "white", "#d94801"))


def _value(row, key):
    """``(measured, paper)`` of one bar of a row (NaN / None where it has none)."""
    if key == "clean":
        return (row["clean"]["value"] if row["clean"] else np.nan), None
    if key == "white":
        result = row["strongest_white"][1] if row["strongest_white"] else None
        return (result["accuracy_defended"] if result else np.nan), row["reported"].get("white")
    result = row["results"][key]
    return (result["accuracy_defended"] if result else np.nan), row["reported"][key]


def _white(row):
    return row["strongest_white"][1]["accuracy_defended"] if row["strongest_white"] else -1.0


def figure(path, table):
    """One panel per dataset: each entry's clean, gray FGSM and strongest white-box accuracy as
    horizontal bars, entries sorted by the white-box figure (most robust on top), the paper's
    figure as a black tick, the legend below the panels."""
    panels = [(label, sorted((r for r in table if r["dataset"] == name), key=_white))
              for name, label in DATASETS if any(r["dataset"] == name for r in table)]
    height = max(len(rows_) for _, rows_ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 0.55 * height + 1.6), squeeze=False)
    width = 0.8 / len(BARS)
    for ax, (label, rows_) in zip(axes[0], panels):
        ys = np.arange(len(rows_))
        for i, (bar_label, key, colour) in enumerate(BARS):
            offset = (1 - i) * width  # clean on top of each group
            values = [_value(r, key) for r in rows_]
            ax.barh(ys + offset, [v for v, _ in values], width, color=colour, label=bar_label)
            if key == "white":  # a 0.000 bar is invisible: say the number
                for y, (v, _) in zip(ys, values):
                    ax.text((0 if np.isnan(v) else v) + 0.01, y + offset, "not run" if np.isnan(v) else f"{v:.3f}",
                            va="center", fontsize=6)
            papers = [(y + offset, p) for y, (_, p) in zip(ys, values) if p is not None]
            if papers:
                ax.scatter([p for _, p in papers], [y for y, _ in papers], marker="|", s=120, color="black",
                           zorder=3, label="paper's figure" if i == 1 else None)
        ax.set_yticks(ys)
        ax.set_yticklabels([r["name"] for r in rows_], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("accuracy (Linf eps 0.3)")
        ax.set_title(label)
        ax.grid(axis="x", alpha=0.3)
    handles = {}
    for ax in axes[0]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def zoo_table(table):
    """README's zoo table: one row per entry with its clean, gray-box FGSM and strongest white-box
    figure (the paper's in brackets), linked to its card."""
    lines = ["| entry | dataset | clean | gray-box FGSM | strongest white-box |", "|---|---|---|---|---|"]
    for row in table:
        clean = f"{row['clean']['value']:.3f}" if row["clean"] else "-"
        white = "-"
        if row["strongest_white"]:
            attack, result = row["strongest_white"]
            white = f"{_cell(result, row['reported'].get('white'))} {attack}"
        gray = _cell(row["results"][("gray_box", "fgsm")], row["reported"][("gray_box", "fgsm")])
        lines.append(f"| [`{row['name']}`](saved_models/{row['name']}/README.md) | {row['dataset']} | {clean} "
                     f"| {gray} | {white} |")
    return "\n".join(lines) + "\n"


README_BEGIN = "<!-- zoo table: written by `tfdefense leaderboard --readme=README.md` from the cards -->"
README_END = "<!-- end of zoo table -->"


def write_readme_table(path, table):
    """Replaces the zoo table between README's markers with `zoo_table` of ``table``."""
    with open(path) as f:
        text = f.read()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path} has no zoo-table markers ({README_BEGIN} ... {README_END}).")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    cards.write_text(path, f"{head}{README_BEGIN}\n{zoo_table(table)}{README_END}{tail}")


def write(path="docs/leaderboard.md", models=()):
    """Writes the markdown page and ``leaderboard.png`` beside it; returns the rows (the zoo's entries, then
    the defense folders in ``models``)."""
    table = rows(models)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    text = to_markdown(table)
    if table:
        figure(os.path.join(folder, "leaderboard.png"), table)
        text += "\n![leaderboard](leaderboard.png)\n"
    cards.write_text(path, text)
    return table


def untraced_numbers(name):
    """Card robustness figures of ``name`` that no report.json under its ``reports/`` holds
    with the same threat, attack, n and accuracy: a card number must come from a report."""
    _, folder, card = store.find(name)
    reports = []
    for dirpath, _, files in os.walk(os.path.join(folder, "reports")):
        if "report.json" in files:
            with open(os.path.join(dirpath, "report.json")) as f:
                reports.append(json.load(f))
    found = {(cards.result_section(r["threat"], report.get("settings", {})),
              cards.result_key(r["attack"], r["params"]), r["n"], round(r["accuracy_defended"], 4), report.get("seed"))
             for report in reports for r in report["results"]}
    missing = []
    for threat, results in card.get("measured", {}).get("robustness", {}).items():
        for attack, r in results.items():
            if (threat, attack, r["n"], round(r["accuracy_defended"], 4), r.get("seed")) not in found:
                missing.append(f"{threat}/{attack}")
    return missing
