"""PNG figures for reports and model cards (matplotlib, no display needed)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tfdefense.purification import roc_curve  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def image_grid(path, rows, max_images=8, title=None):
    """One row per entry of ``rows`` ({label: images [N, 28, 28, 1]})."""
    labels = list(rows)
    n = min(max_images, min(len(v) for v in rows.values()))
    fig, axes = plt.subplots(len(labels), n, figsize=(1.2 * n, 1.3 * len(labels)), squeeze=False)
    for r, label in enumerate(labels):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.asarray(rows[label][c]).squeeze(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def accuracy_vs_eps(path, eps_values, curves, title=None):
    """Accuracy curves ({label: accuracies}) against the attack budget."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, acc in curves.items():
        ax.plot(eps_values, acc, marker="o", markersize=3, label=label)
    ax.set_xlabel("eps (Linf)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def detector_figure(path, clean_scores, adv_scores_by_eps, threshold=None, metric="l1"):
    """ROC curves (left) and FNR/FPR against the threshold (right), as the paper's Figure 3."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
    grid = np.linspace(0, max(np.max(clean_scores), *(np.max(s) for s in adv_scores_by_eps.values())), 200)
    ax2.plot(grid, [np.mean(clean_scores > t) for t in grid], "k--", label="FPR (clean)")
    for eps, adv in adv_scores_by_eps.items():
        fpr, tpr, _, auc = roc_curve(clean_scores, adv)
        ax1.plot(fpr, tpr, label=f"FGSM eps={eps} (AUC {auc:.3f})")
        ax2.plot(grid, [np.mean(adv <= t) for t in grid], label=f"FNR eps={eps}")
    ax1.plot([0, 1], [0, 1], color="gray", lw=0.5)
    ax1.set_xlabel("false positive rate")
    ax1.set_ylabel("true positive rate")
    ax1.legend(fontsize=7)
    if threshold is not None:
        ax2.axvline(threshold, color="red", lw=0.8, label="threshold")
    ax2.set_xlabel(f"threshold ({metric} detector score)")
    ax2.set_ylabel("rate")
    ax2.legend(fontsize=7)
    return _save(fig, path)


def accuracy_vs_compute(path, result):
    """Gray- and white-box accuracy against gradient steps per image (log x),
    one line per (method, R), from `benchmarks/purification_cost.py` rows."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    names = {"aegan": ("AE-GAN+rs", "o-"), "defensegan": ("Defense-GAN", "s--"),
             "magnet": ("MagNet reformer", "^"), "apegan": ("APE-GAN", "D")}
    for ax, key in zip(axes, ("gray_fgsm", "white_fgsm")):
        for method, restarts in sorted({(r["method"], r["restarts"]) for r in result["rows"]}):
            rows = [r for r in result["rows"] if (r["method"], r["restarts"]) == (method, restarts)
                    and r.get(key) is not None]
            if rows:
                label, style = names.get(method, (method, "x"))
                ax.plot([max(r["gradient_steps"], 1) for r in rows], [r[key] for r in rows], style,
                        label=f"{label} (R={restarts}, L varies)" if restarts else f"{label} (one pass)")
        ax.set_xscale("log")
        ax.set_xlabel("gradient steps per image (L x R; 0 plotted at 1)")
        ax.set_title(f"{key.replace('_', ' ')} (eps={result['eps']}), {result['dataset']}", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("accuracy")
    return _save(fig, path)
