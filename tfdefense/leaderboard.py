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

from tfdefense import cards, registry, store  # noqa: E402

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


def strongest_white(white):
    """(attack, result) with the lowest accuracy among the card's white-box Linf attacks at the standard
    eps (not "fgsm_0.4", not the unbounded L2 attacks CW and DeepFool), or None."""
    linf = {k: r for k, r in white.items() if abs(r["params"].get("eps", -1) - cards.DEFAULT_EPS) < 1e-9}
    return min(linf.items(), key=lambda kv: kv[1]["accuracy_defended"]) if linf else None


def white_results(robustness):
    """The published model's white-box results: its ``white_box`` section and the sections of attacks that
    asked for BPDA through a declared surrogate (``white_box_bpda="surrogate"``: the same model, another
    gradient), the latter named ``<attack> (bpda surrogate)``. Sections with changed inference settings are
    another model and stay out."""
    out = dict(robustness.get("white_box", {}))
    prefix = "white_box_bpda="
    for section, results in robustness.items():
        if section.startswith(prefix):
            how = section[len(prefix):].strip('"')
            out.update({f"{attack} (bpda {how})": r for attack, r in results.items()})
    return out


def rows():
    """One dict per entry whose card holds measured robustness."""
    out = []
    for name in registry.list_models():
        card = store.card(name)
        robustness = (card or {}).get("measured", {}).get("robustness")
        if not robustness:
            continue
        clean = card["measured"].get("clean_accuracy_defended") or card["measured"].get("clean_accuracy")
        strongest = strongest_white(white_results(robustness))
        row = {"name": name, "dataset": card["dataset"], "clean": clean, "results": {}, "reported": {},
               "strongest_white": strongest, "epochs": cards.epochs_trained(card.get("training", {}))}
        for threat, attack in COLUMNS:
            row["results"][(threat, attack)] = robustness.get(threat, {}).get(attack)
            row["reported"][(threat, attack)] = card.get("reported", {}).get(threat, {}).get(REPORTED_KEYS[attack])
        if strongest:
            row["reported"]["white"] = card.get("reported", {}).get("white_box", {}).get(
                REPORTED_KEYS.get(strongest[0], strongest[0]))
        out.append(row)
    return out


def to_markdown(table):
    lines = ["# tfdefense leaderboard", "",
             "Accuracy of the final label at Linf eps 0.3, classifier A (a rejected input counts only if its "
             "label is right: rejecting is not a success here; the cards give 'defended or rejected' beside it), "
             "from each model card; the paper's figure in brackets. White-box: the lowest accuracy among the "
             "adaptive Linf attacks run at eps 0.3 (exact gradient or BPDA + EOT as the defense declares; `pgd_detector` is PGD "
             "with the detectors in the loss). Standard protocol: n >= 1000, seed 0, the `eval` split; a "
             "dagger marks a cell that departs from it (see the card).", "",
             "| model | dataset | epochs | clean | gray FGSM | gray PGD | black FGSM (substitute B) "
             "| strongest white-box | n, seed |", "|---|---|---|---|---|---|---|---|---|"]
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
                     + " | ".join(cells) + f" | {white} | {'; '.join(f'{n}, {s}' for n, s in protocol)} |")
    return "\n".join(lines) + "\n"


def figure(path, table):
    """Grouped bars: clean, gray FGSM, gray PGD, black FGSM, strongest white-box per model."""
    labels = ["clean", "gray FGSM", "gray PGD", "black FGSM", "white (strongest)"]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(table)), 3.8))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        values = []
        for row in table:
            if i == 0:
                values.append(row["clean"]["value"] if row["clean"] else np.nan)
            elif i == 4:
                values.append(row["strongest_white"][1]["accuracy_defended"] if row["strongest_white"] else np.nan)
            else:
                result = row["results"][COLUMNS[i - 1]]
                values.append(result["accuracy_defended"] if result else np.nan)
        ax.bar(np.arange(len(table)) + i * width, values, width, label=label)
    ax.set_xticks(np.arange(len(table)) + 0.4 - width / 2)
    ax.set_xticklabels([row["name"] for row in table], rotation=20, fontsize=8)
    ax.set_ylabel("accuracy (eps 0.3)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(path="docs/leaderboard.md"):
    """Writes the markdown page and ``leaderboard.png`` beside it; returns the rows."""
    table = rows()
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
