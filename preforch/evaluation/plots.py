"""PNG figures (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Render to a temp name, then rename: a reader never sees a half-written PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)


def plot_weights_by_source(weights: torch.Tensor, sources: Sequence[str], objectives: Sequence[str], path: Path) -> None:
    """One histogram panel per objective: the predicted weight for prompts of each source."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(objectives), figsize=(4 * len(objectives), 3.2), squeeze=False)
    for k, (ax, objective) in enumerate(zip(axes[0], objectives)):
        for src in dict.fromkeys(sources):
            vals = weights[[s == src for s in sources], k].numpy()
            ax.hist(vals, bins=30, range=(0, 1), alpha=0.55, label=f"{src} (n={len(vals)})")
        ax.set_title(f"orchestrator weight: {objective}")
        ax.set_xlabel("weight")
    axes[0][0].set_ylabel("held-out prompts")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_grouped_bars(table: dict[str, dict[str, dict[str, float]]], objectives: Sequence[str], path: Path, ylabel: str) -> None:
    """table[group][series][objective] -> one panel per group, bars per objective and series; no bar where the value
    is None (an objective that applies to none of the group's prompts)."""
    plt = _pyplot()
    groups = list(table)
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.4), squeeze=False, sharey=True)
    for ax, group in zip(axes[0], groups):
        series = list(table[group])
        width = 0.8 / len(series)
        for j, name in enumerate(series):
            bars = [(i + (j - (len(series) - 1) / 2) * width, table[group][name][o]) for i, o in enumerate(objectives)]
            bars = [(x, h) for x, h in bars if h is not None]
            ax.bar([x for x, _ in bars], [h for _, h in bars], width, label=name)
        ax.set_xticks(range(len(objectives)), objectives)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(f"prompts from {group}")
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_curve(values: Sequence[float], path: Path, title: str, xlabel: str, ylabel: str, smooth: int = 1) -> None:
    """One curve of values against 1, 2, ... (e.g. a loss per step or epoch)."""
    plot_series({title: list(enumerate(values, 1))}, path, ylabel, smooth, xlabel=xlabel, title=title)


def plot_fronts(series: dict[str, Sequence[Sequence[float]]], markers: dict[str, Sequence[float]], objectives: Sequence[str],
                path: Path) -> None:
    """Mean-reward points of each series (a method's preference grid), its Pareto front as a line, and
    single points (e.g. uniform, orchestrator; "run: uniform" takes the run's colour) as markers, one shape
    per weighting. K > 2: one panel per pair of objectives."""
    import itertools

    import numpy as np

    from preforch.evaluation.pareto import pareto_mask

    plt = _pyplot()
    pairs = list(itertools.combinations(range(len(objectives)), 2))
    cols = min(3, len(pairs))
    rows = (len(pairs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (i, j) in zip(axes.flat, pairs):
        for c, (name, pts) in enumerate(series.items()):
            pts = np.asarray(pts)
            proj = pts[:, [i, j]]
            ax.scatter(proj[:, 0], proj[:, 1], s=14, alpha=0.5, color=colors[c % len(colors)])
            front = proj[pareto_mask(proj)]
            front = front[np.argsort(front[:, 0])]
            ax.plot(front[:, 0], front[:, 1], "-o", ms=4, color=colors[c % len(colors)], label=name)
        shapes: dict[str, str] = {}
        for name, point in markers.items():
            # "run: weighting" (compare): the run's colour, one shape per weighting; else black
            run, _, label = name.rpartition(": ")
            shape = shapes.setdefault(label, "*X^sDP"[len(shapes) % 6])
            color = colors[list(series).index(run) % len(colors)] if run in series else "black"
            ax.scatter([point[i]], [point[j]], marker=shape, s=130, color=color, edgecolors="black", zorder=5, label=name)
        ax.set_xlabel(f"{objectives[i]} (mean normalised reward)")
        ax.set_ylabel(f"{objectives[j]}")
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_series(series: dict[str, list[tuple[float, float]]], path: Path, ylabel: str, smooth: int = 1,
                xlabel: str = "step", title: str | None = None) -> None:
    """One line per named series of (x, value) points; with `smooth` > 1 a trailing moving average over
    the faint raw values."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    _draw_series(ax, series, smooth)
    ax.set(xlabel=xlabel, ylabel=ylabel + (f" (moving average of {smooth})" if smooth > 1 else ""), title=title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _draw_series(ax, series: dict[str, list[tuple[float, float]]], smooth: int) -> None:
    for name, points in series.items():
        xs, ys = zip(*sorted(points))
        w = max(1, smooth)
        avg = [sum(ys[max(0, i - w + 1):i + 1]) / len(ys[max(0, i - w + 1):i + 1]) for i in range(len(ys))]
        line, = ax.plot(xs, avg, label=name)
        ax.plot(xs, ys, alpha=0.25, color=line.get_color())


def plot_rl_comparison(heldout: dict[str, dict[str, list]], training: dict[str, list], path: Path, smooth: int = 5) -> None:
    """The Figure 3 analogue: one panel per held-out curve (e.g. 'combined, uniform w') with each method's value
    (heldout[method][curve] = [[step, mean, ci95], ...], error bars), and a last panel with each
    method's training reward per step (training[method] = [[step, value], ...], moving average)."""
    plt = _pyplot()
    weightings = list(next(iter(heldout.values())))
    fig, axes = plt.subplots(1, len(weightings) + 1, figsize=(5 * (len(weightings) + 1), 3.8), squeeze=False)
    for ax, w in zip(axes[0], weightings):
        for method, curves in heldout.items():
            steps, means, cis = zip(*curves[w])
            ax.errorbar(steps, means, yerr=cis, marker="o", capsize=3, label=method)
        ax.set(xlabel="training step", ylabel="held-out reward (judge, normalised)", title=f"held-out, {w}")
        ax.legend(fontsize=8)
    _draw_series(axes[0][-1], training, smooth)
    axes[0][-1].set(xlabel="training step", ylabel=f"combined reward (moving average of {smooth})",
                    title="training batches, each method's own weights")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_accuracy_bars(rows: dict[str, dict], path: Path, title: str) -> None:
    """Horizontal bars of each weighting's combined-reward accuracy on human labels, with its 95% CI
    (rows: name -> {"accuracy", "ci95": [lo, hi]}, as orchestrator/human_labels.py reports them)."""
    plt = _pyplot()
    names = list(rows)[::-1]
    acc = [rows[n]["accuracy"] for n in names]
    err = [[a - rows[n]["ci95"][0] for n, a in zip(names, acc)], [rows[n]["ci95"][1] - a for n, a in zip(names, acc)]]
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(names) + 1.2))
    colors = ["tab:red" if n == "orchestrator" else "tab:gray" for n in names]
    ax.barh(names, acc, xerr=err, color=colors, capsize=3)
    ax.axvline(0.5, color="black", lw=0.8, ls=":")
    ax.set_xlim(min(0.4, min(acc) - 0.05), max(acc) + 0.08)
    ax.set_xlabel("share of held-out pairs where w . (r~_chosen - r~_rejected) > 0")
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)


def plot_headline(result: dict, path: Path) -> None:
    """The headline test as a forest plot, one panel per training signal: every comparison of an arm with a
    fixed-weight arm (headline.json's signals[*].comparisons) by source and overall, pooled over training seeds
    (95% CI bars) with each seed's mean (small dots), and the noise floor (the larger arm's seed-to-seed
    difference, mean +- half-width) shaded around 0."""
    plt = _pyplot()
    signals = result["signals"]
    fig, axes = plt.subplots(1, len(signals), figsize=(7 * len(signals), 1.2 + 0.9 * max(
        len(s["comparisons"]) for s in signals.values()) * 2), squeeze=False)
    for ax, (signal, s) in zip(axes[0], signals.items()):
        labels, y = [], 0
        for name, c in s["comparisons"].items():
            floor = c["noise_floor"]
            half = abs(floor["mean"]) + (floor["ci95"][1] - floor["ci95"][0]) / 2
            for part in [*(k for k in c["pooled"] if k != "overall"), "overall"]:
                p = c["pooled"][part]
                ax.errorbar(p["mean"], y, xerr=[[p["mean"] - p["ci95"][0]], [p["ci95"][1] - p["mean"]]], fmt="o",
                            color="black" if part == "overall" else "tab:blue", capsize=3)
                ax.scatter([ps[part]["mean"] for ps in c["per_seed"].values()], [y] * len(c["per_seed"]), s=8,
                           color="tab:orange", zorder=3)
                if part == "overall":
                    ax.fill_betweenx([y - 0.4, y + 0.4], -half, half, color="0.85", zorder=0)
                labels.append(f"{name}: {part}")
                y += 1
        ax.axvline(0, color="0.4", lw=0.8)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="difference in the judge's score on each prompt's own objective (z)", title=signal)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_robustness(result: dict, path: Path) -> None:
    """`preforch robustness`: one column per corruption kind; top, each weighting's held-out human-label accuracy
    (95% CI band) against the corruption level; bottom, the weight each puts on the corrupted objective (the
    orchestrator's mean over held-out prompts)."""
    plt = _pyplot()
    curves, levels, objective = result["curves"], result["levels"], result["objective"]
    fig, axes = plt.subplots(2, len(curves), figsize=(4.5 * len(curves), 6.5), squeeze=False, sharey="row")
    for col, (kind, keys) in enumerate(curves.items()):
        x = [levels[k]["level"] for k in keys]
        for name in levels[keys[0]]["accuracy"]:
            acc = [levels[k]["accuracy"][name] for k in keys]
            line = axes[0][col].plot(x, [a["accuracy"] for a in acc], marker="o", label=name)[0]
            axes[0][col].fill_between(x, [a["ci95"][0] for a in acc], [a["ci95"][1] for a in acc],
                                      color=line.get_color(), alpha=0.15)
            axes[1][col].plot(x, [levels[k]["weight"][name] for k in keys], marker="o", color=line.get_color())
        axes[0][col].set_title(f"{objective} reward: {kind}")
        axes[1][col].set_xlabel("corruption level")
    axes[0][0].set_ylabel("held-out human-label accuracy")
    axes[1][0].set_ylabel(f"weight on {objective}")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
