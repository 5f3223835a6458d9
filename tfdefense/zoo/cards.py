"""Model cards: one module reads, verifies, writes and renders them.

A card is ``model_card.json`` beside an entry's weights, plus a ``README.md``
rendered from it: what was trained and how, what tfdefense measured (with the
settings, n and seed of each number), the paper's figures in a separate
``reported`` field, the inference settings chosen on validation data, and the
sha256 of every weight file. Reading fails closed: a card that cannot be
parsed, lists no files, or whose files do not match is a `WeightsError`
naming the file, never a silent load.

Example:
    >>> from tfdefense import cards
    >>> card = cards.read_card("saved_models/aegan_mnist")     # doctest: +SKIP
    >>> card["measured"]["robustness"]["gray_box"]["fgsm"]     # doctest: +SKIP
"""

import contextlib
import hashlib
import json
import os
import platform

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; card updates are then not serialised
    fcntl = None

import keras
import tensorflow as tf

from tfdefense.version import __version__

CARD = "model_card.json"
MODELS_ENV = "TFDEFENSE_MODELS_DIR"


class WeightsError(RuntimeError):
    """Pretrained files are missing or do not match their model card."""


def read_card(folder, verify=True):
    """Reads ``model_card.json`` in ``folder``, checking each listed file's sha256."""
    path = os.path.join(folder, CARD)
    if not os.path.isfile(path):
        raise WeightsError(f"No model card at {folder} ({CARD} missing): give the folder a training run "
                           f"wrote (its export/) or that `tfdefense train NAME --publish=DIR` or `tfdefense download "
                           f"NAME --to DIR` filled.")
    try:
        card = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path} is not valid JSON ({e}); the card is damaged or truncated. "
                           "Restore it (git checkout) or re-publish the entry.") from e
    if not isinstance(card, dict):
        raise WeightsError(f"{path} does not hold a model card (a JSON object).")
    return verify_files(folder, card, source=path) if verify else card


def verify_files(folder, card, source):
    """Checks that every file ``card`` lists is in ``folder`` with its sha256 (``source`` names the
    card in messages); returns ``card``."""
    if not card.get("files"):
        raise WeightsError(f"{source} lists no weight files, so their sha256 cannot be checked; "
                           "refusing to load. Re-publish the entry to write its file list.")
    for fname, digest in card["files"].items():
        fpath = os.path.join(folder, fname)
        if not os.path.isfile(fpath):
            raise WeightsError(f"{fpath} is listed in {source} but missing.")
        found = sha256(fpath)
        if found != digest:
            raise WeightsError(f"{fpath} has sha256 {found}, but {source} expects {digest}: "
                               "the file is corrupt or was replaced; refusing to load it.")
    return card


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


CLASSIFIER_FILE = "classifier.keras"  # a user's classifier, shipped beside the defense trained for it


def _inference_defaults(entry):
    defaults = dict(entry.get("inference", {}))
    if entry.get("_classifier_file"):
        defaults["classifier"] = CLASSIFIER_FILE
    return defaults


def make_card(entry, config, state, measured, folder, files, data_shape=None):
    """The card of a freshly trained entry: what was trained, how, and the sha256 of ``files``
    (``data_shape``: its ``(image_shape, num_classes)``)."""
    return {
        "name": entry["name"],
        "family": entry["family"],
        "dataset": entry["metadata"]["dataset"],
        "architecture": entry["config"],
        "image_shape": list(data_shape[0]) if data_shape else None,
        "num_classes": data_shape[1] if data_shape else None,
        "description": entry["metadata"].get("description", ""),
        "training": {
            **config,
            "epochs_completed": state.get("epoch", 0),
            "scheduled_epochs": entry.get("train", {}).get("epochs", config["epochs"]),
            "wall_time_s": round(state.get("wall_time_s", 0.0), 1),
            "command": entry.get("_command") or f"tfdefense train {entry['name']}",
            "machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
            "tensorflow": tf.__version__, "keras": keras.__version__, "tfdefense": __version__,
            "final_logs": state.get("history", [{}])[-1] if state.get("history") else {},
            **({"warm_start": state["warm_start"]} if state.get("warm_start") else {}),
            # the strategy, replicas, workers and global batch of the last run (`tfdefense.zoo.distribute`)
            **({"distribution": state["distribution"]} if state.get("distribution") else {}),
            # where the first weights came from: the entry's name and files, not this machine's path
            **({"init_from": {k: v for k, v in state["init_from"].items() if k != "from"}}
               if state.get("init_from") else {}),
        },
        "measured": measured,
        "reported": entry["metadata"].get("reported", {}),
        "reference": entry["metadata"].get("reference", ""),
        # A defense trained on your data is loaded from its card alone: its inference defaults travel with it.
        **({"inference_defaults": _inference_defaults(entry)} if entry.get("_user") else {}),
        "files": {f: sha256(os.path.join(folder, f)) for f in files},
        "file_sizes": {f: os.path.getsize(os.path.join(folder, f)) for f in files},
    }


REPORTED_KEYS = {"fgsm": "fgsm_0.3", "bim": "bim_0.3", "pgd": "pgd_0.3", "cw": "cw_l2"}
DEFAULT_EPS = 0.3


def result_key(attack, params):
    """The card key of one result: the attack's name, with its eps appended
    when that is not the zoo's default 0.3 (``fgsm_0.1``)."""
    eps = params.get("eps")
    return attack if eps is None or abs(eps - DEFAULT_EPS) < 1e-9 else f"{attack}_{eps:g}"


def settings_suffix(overrides=None):
    """How a card names results measured with changed inference ``overrides``: nothing for the
    model as published, ``_no_detector`` with every detector off (``threshold=None``), otherwise
    the settings appended (``_steps=30``), so such a run never overwrites the published figures."""
    if not overrides:
        return ""
    if overrides == {"threshold": None}:
        return "_no_detector"
    return "_" + "_".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(overrides.items()))


def section_key(threat, overrides=None):
    """The card section of results measured under ``threat`` with ``overrides`` (``gray_box_no_detector``)."""
    return f"{threat}_box{settings_suffix(overrides)}"


# The figure a paper reports, by card section: plain accuracy, or a rejected (detected) input counted as handled.
PAPER_FIGURES = (("", "accuracy"), ("_defended_or_rejected", "defended or rejected"),
                 ("_defended_or_detected", "defended or detected"))


def paper_figure(card, threat, attack):
    """``(value, what it counts)`` of the paper's figure for ``attack`` under ``threat`` (a card section
    such as ``gray_box``), or ``(None, None)``. Plain accuracy first; papers that count a rejected or
    detected input as handled have it in ``<threat>_defended_or_rejected`` / ``_defended_or_detected``."""
    reported = card.get("reported", {})
    for suffix, kind in PAPER_FIGURES:
        figures = reported.get(threat + suffix, {})
        for key in (REPORTED_KEYS.get(attack, attack), attack):
            if isinstance(figures, dict) and key in figures:
                return figures[key], kind
    return None, None


def result_section(threat, settings):
    """The card section of a result measured under ``threat`` by a report with ``settings``: its inference
    overrides name it (`section_key`), and a white-box result through a surrogate the attack asked for
    (``settings["white_box"]["bpda"]``) gets its own section too (``white_box_bpda="surrogate"``), as does
    a random defense attacked through a single noise draw (``white_box_eot=1``, no EOT)."""
    overrides = dict(settings.get("overrides") or {})
    white_box = settings.get("white_box") or {}
    if threat == "white" and white_box.get("bpda"):
        overrides["bpda"] = white_box["bpda"]
    if threat == "white" and settings.get("random") and white_box.get("eot") == 1:
        overrides["eot"] = 1  # a random defense attacked through one noise draw: its own section
    return section_key(threat, overrides)


def _robustness_table(card):
    """Markdown rows: measured robustness with the paper's figure beside it (and what that figure counts)."""
    robustness = card["measured"].get("robustness", {})
    if not robustness:
        return []
    lines = ["", "| threat | attack | n | defended | no defense | flagged | rejected | defended or rejected "
             "| defended or detected | paper | mean L2 / Linf of the fooled | settings |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for threat, results in robustness.items():
        for attack, r in results.items():
            value, kind = paper_figure(card, threat, attack)
            paper = "-" if value is None else f"{value} ({kind})"
            settings = {k: v for k, v in r["params"].items() if k != "n"}
            lines.append(f"| {threat.replace('_box', '')} | {attack} | {r['n']} | {r['accuracy_defended']:.3f} "
                         f"| {r['accuracy_undefended']:.3f} | {_fmt(r.get('detection_rate'))} | {r['rejection_rate']:.3f} "
                         f"| {_fmt(r.get('accuracy_or_rejected'))} | {_fmt(r.get('accuracy_or_detected'))} | {paper} "
                         f"| {_distortion(r)} | `{json.dumps(settings)}`, seed {r['seed']}, {r['split']} split |")
    return lines


def _sanity_lines(card):
    sanity = card["measured"].get("sanity")
    if not sanity:
        return []
    verdicts = {True: "passed", False: "FAILED", None: "does not apply"}
    return (["", f"Sanity checks (n={sanity.get('n')}, white-box `{json.dumps(sanity.get('white_box', {}))}`):", ""]
            + [f"- {verdicts[c['passed']]} {k}: {c['detail']}" for k, c in sanity["checks"].items()])


def _cost_lines(card):
    """The card's `tfdefense bench` result as a table (``measured.cost``)."""
    cost = card["measured"].get("cost")
    if not cost:
        return []
    flops = cost["flops_per_image"]
    lines = ["", "## Cost to serve (`tfdefense bench`)", "",
             f"{flops['total'] / 1e9:.3g} GFLOP per purified image"
             + (f", {flops['unflagged'] / 1e9:.3g} for an unflagged one" if "unflagged" in flops else "")
             + f"; {cost['machine']['cpus']} CPUs; images: {cost.get('images', '')}.", "",
             "| policy | images/s by batch | fraction of fp32 matmul (its rate, GFLOP/s) "
             "| one image p50 in-process / exported (ms) | export / weights: variables, whole | peak memory (MB) |",
             "|---|---|---|---|---|---|"]
    for policy, r in cost["policies"].items():
        if "error" in r:
            lines.append(f"| {policy} | {r['error']} | | | | |")
            continue
        latency = r["latency_ms"]["first_image"]
        served = latency.get("exported", {}).get("p50", "-")
        size = r.get("export", {})
        whole = round(size["saved_model_mb"] / size["weights_mb"], 2) if size.get("weights_mb") else "-"
        matmul = r.get("fp32_matmul_gflops", cost["matmul_gflops"]["float32"])
        lines.append(f"| {policy} | {', '.join(f'{b}: {v:,.1f}' for b, v in r['images_per_s'].items())} "
                     f"| {r['fraction_of_fp32_matmul']} ({matmul}) | {latency['in_process']['p50']} / {served} "
                     f"| {size.get('variables_to_weights', '-')}, {whole} | {r['peak_memory_mb']} |")
    if cost.get("recommended_policy"):
        moves = ", ".join(f"{policy} {100 * r['accuracy_move']:.2f} pt" for policy, r in cost["policies"].items()
                          if "accuracy_move" in r)
        images = cost.get("accuracy_images", {})
        lines += ["", f"Accuracy against float32 on {images.get('n', '?')} eval images, clean and gray-box "
                  f"FGSM/PGD (eps {images.get('eps', '?')}): largest move {moves or '-'}; served as "
                  f"**{cost['recommended_policy']}** (the fastest policy within 0.5 points)."]
    for policy, r in cost["policies"].items():
        profile = r.get("op_profile")
        if profile:
            ops = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in profile["ops"][:4])
            heavy = profile["flop_ops"]
            lines += ["", f"Served graph, {policy}, batch {profile['batch']} (`bench --ops`): {ops}; the "
                      f"convolutions and matmuls take {100 * heavy['share']:.0f}% of the time"
                      + (f" at {heavy['fraction_of_fp32_matmul']} of the fp32 matmul rate."
                         if "fraction_of_fp32_matmul" in heavy else ".")]
    return lines


def _fmt(value):
    return "-" if value is None else f"{value:.3f}"


def _distortion(result):
    if result.get("mean_l2_fooled") is None:
        return "-"
    return f"{result['mean_l2_fooled']:.3f} / {result['mean_linf_fooled']:.3f}"


def epochs_trained(training):
    """(epochs completed, epochs in the registered schedule) from a card's
    ``training`` section; cards written before the schedule was recorded
    (the classifiers') only have ``epochs``."""
    return training.get("epochs_completed", "?"), training.get("scheduled_epochs", training.get("epochs", "?"))


def _drops(training):
    drops = training.get("learning_rate_drops")
    return f" (divided by 10 from epoch {', '.join(str(d + 1) for d in drops)})" if drops else ""


def write_card(folder, card):
    """Writes ``model_card.json`` and a short ``README.md`` rendered from it."""
    write_json(os.path.join(folder, CARD), card)
    t = card["training"]
    completed, scheduled = epochs_trained(t)
    lines = [f"# {card['name']}", "", card.get("description", ""), "",
             f"- family: `{card['family']}`, dataset: `{card['dataset']}`"
             + (f", images {'x'.join(map(str, card['image_shape']))}, {card['num_classes']} classes"
                if card.get("image_shape") else ""),
             f"- architecture: `{json.dumps(card['architecture'])}`",
             f"- training: {completed} epochs of the {scheduled}-epoch schedule, batch "
             f"{t['batch_size']}, Adam lr {t['learning_rate']}{_drops(t)}, seed {t['seed']}, "
             f"{t.get('dtype_policy', 'float32')}, {t['wall_time_s'] / 60:.1f} min of training on "
             f"{t['machine']} (`{t['command']}`)", "", "## Measured by tfdefense", ""]
    lines += [f"- {k}: `{json.dumps(v)}`" for k, v in card["measured"].items()
              if k not in ("robustness", "cost", "sanity")]
    lines += _robustness_table(card) + _sanity_lines(card) + _cost_lines(card)
    if card.get("reported"):
        lines += ["", "## Reported in the paper (targets, not measurements)", ""]
        lines += [f"- {k}: `{json.dumps(v)}`" for k, v in card["reported"].items()]
        lines += ["", f"Reference: {card.get('reference', '')}"]
    for section in ("inference", "calibration"):
        if card.get(section):
            lines += ["", "## Inference settings (chosen on validation data)" if section == "inference"
                      else "## Calibration", ""]
            lines += [f"- {k}: `{json.dumps(v)}`" for k, v in card[section].items()]
    for title, analysis in card.get("analysis", {}).items():
        lines += ["", f"## Analysis: {title}", "", analysis.get("setting", ""), "", analysis["table"], "",
                  f"Source: `{analysis['report']}`"]
    if card.get("notes"):
        lines += ["", "## Notes", "", card["notes"]]
    lines += ["", "## Files (sha256, checked at load)", ""]
    lines += [f"- `{f}`: `{h}`" for f, h in card["files"].items()]
    write_text(os.path.join(folder, "README.md"), "\n".join(lines) + "\n")
    from tfdefense.zoo import store  # a published card in a checkout travels with the package too
    store.sync_packaged(folder)


@contextlib.contextmanager
def _locked(folder):
    """Holds an exclusive lock on ``folder`` (two evaluations updating one card take turns)."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_card(folder, change):
    """Reads and verifies the card in ``folder``, applies ``change(card)`` and writes it,
    all under one lock, so concurrent updates (an evaluation, a calibration) never lose
    each other's fields. Returns the card written."""
    with _locked(folder):
        card = read_card(folder, verify=True)
        change(card)
        write_card(folder, card)
    return card


def write_report(folder, report):
    """Stores measured robustness in the card (the paper's numbers stay in "reported")."""
    return update_card(folder, lambda card: _store_report(card, report))


def _store_report(card, report):
    robustness = card.setdefault("measured", {}).setdefault("robustness", {})
    overrides = report.settings.get("overrides") or {}
    for r in report.results:
        section, key = robustness.setdefault(result_section(r.threat, report.settings), {}), result_key(r.attack, r.params)
        if section.get(key, {}).get("n", 0) > r.n:
            continue  # a run on fewer images never replaces a figure measured on more (republishing clears them)
        section[key] = {
            "accuracy_defended": round(r.accuracy_defended, 4), "accuracy_undefended": round(r.accuracy_undefended, 4),
            "rejection_rate": round(r.rejection_rate, 4), "accuracy_or_rejected": round(r.accuracy_or_rejected, 4),
            "n": r.n, "params": r.params, "seed": report.seed, "split": report.split,
            **{k: round(getattr(r, k), 4) for k in ("mean_linf_fooled", "mean_l2_fooled", "detection_rate",
                                                      "accuracy_or_detected", "accuracy_k_queries")
               if getattr(r, k, None) is not None},
            **({"queries_k": r.queries_k} if getattr(r, "queries_k", None) else {})}
    measured = card["measured"]
    clean_key = "clean_accuracy_defended" + settings_suffix(overrides)
    # A run on fewer images (a white-box run at n=100, say) never replaces a figure measured on more.
    if report.n >= measured.get(clean_key, {}).get("n", 0):
        measured[clean_key] = {"value": round(report.clean["accuracy_defended"], 4),
                               "n": report.n, "split": report.split, "seed": report.seed,
                               **({"queries_k": report.clean["queries_k"],
                                   "accuracy_k_queries": round(report.clean["accuracy_k_queries"], 4)}
                                  if report.clean.get("queries_k") else {})}
    if report.detector and report.detector.get("n", 0) >= measured.get("detector", {}).get("n", 0):
        measured["detector"] = report.detector
    if report.substitute:
        card["measured"]["black_box_substitute"] = report.substitute
    if report.sanity:
        measured["sanity"] = {**report.settings.get("sanity", {}), "seed": report.seed, "split": report.split,
                              "checks": report.sanity}


def write_json(path, obj):
    """Writes JSON atomically (see `write_text`)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path, text):
    """Writes a file atomically: a killed or concurrent write never leaves a half-written file."""
    tmp = f"{path}.{os.getpid()}.tmp"  # one per process: two writers never share a temporary file
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def read_json(path):
    with open(path) as f:
        return json.load(f)
