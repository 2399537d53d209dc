"""Metrics shared by reports: confidence intervals, steering, rank correlation, head specialisation and interference,
bootstraps (the orchestrator's own metrics are in orchestrator/metrics.py)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from preforch.errors import DataError
from preforch.orchestrator.human_labels import source_oracle_weights
from preforch.rewards.scores import Scores, as_scores


def mean_ci(values: torch.Tensor | np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Column means and Student-t CI half-widths (`scipy.stats.t`; the held-out sets here are often 16-64
    prompts, where the normal approximation is too narrow): [N, K] -> ([K], [K]); NaN half-widths for N < 2."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return v.mean(0), np.full(v.shape[1], np.nan)
    return v.mean(0), stats.t.ppf((1 + confidence) / 2, len(v) - 1) * stats.sem(v, axis=0)


def defined(x: float) -> float | None:
    """None for an undefined statistic (NaN): what results carry, so that no file holds NaN (DESIGN.md section 8)."""
    return None if math.isnan(x) else float(x)


def mean_interval(values: torch.Tensor | np.ndarray | Sequence[float]) -> dict[str, float | None]:
    """{"mean", "ci95"} of values [N] (`mean_ci`), None where undefined: the mean for N = 0, the CI for N < 2."""
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return {"mean": None, "ci95": None}
    m, h = mean_ci(v[:, None])
    return {"mean": float(m[0]), "ci95": defined(h[0])}


def objective_means(scores: Scores | torch.Tensor, objectives: Sequence[str]) -> dict[str, dict]:
    """Each objective's mean and 95% CI half-width over the items it applies to, and how many there are: scores
    [N, K] -> {"mean": {objective: float | None}, "ci95": {...}, "n": {objective: int}}; the mean None where it
    applies to no item, the CI where to fewer than two (an evaluation row)."""
    s = as_scores(scores)
    stats = [mean_interval(s.values[s.applies[:, k], k]) for k in range(len(objectives))]
    return {"mean": {o: x["mean"] for o, x in zip(objectives, stats)},
            "ci95": {o: x["ci95"] for o, x in zip(objectives, stats)},
            "n": dict(zip(objectives, s.applies.sum(0).tolist()))}


def scores_from_lists(rows: Sequence[Sequence[float | None]]) -> Scores:
    """`Scores` back from the nested lists a result file holds (`Scores.tolist`: None where not applicable)."""
    return Scores.from_nan(torch.tensor([[math.nan if v is None else v for v in row] for row in rows], dtype=torch.float32))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of x [n] and y [n] (`scipy.stats.spearmanr`, ties sharing ranks); NaN if either
    is constant."""
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) == 0 or np.ptp(y) == 0:  # undefined; scipy would warn and return NaN
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def _masked_mean(values: np.ndarray, applies: np.ndarray, axis) -> np.ndarray:
    """Mean over `axis` of the entries that apply; NaN where none does (an internal marker, never returned)."""
    n = applies.sum(axis)
    return np.where(n > 0, np.where(applies, values, 0.0).sum(axis) / np.maximum(n, 1), np.nan)


def steering_monotonicity(grid: np.ndarray, rewards: Scores | np.ndarray, objectives: Sequence[str]) -> dict[str, dict]:
    """Does asking for more of an objective give more of it? grid [G, K] requested preferences; rewards
    [G, P, K] judged rewards of the answers to P prompts (the same prompts at every grid point; `Scores` where an
    objective may not apply). Per objective i, over the answers it applies to:
    - spearman: rank correlation of w_i with mean reward_i over the grid (1 = perfectly monotone);
    - non_decreasing_steps: over the distinct levels of w_i in increasing order (points sharing a level averaged),
      the fraction of steps where mean reward_i did not fall;
    - reward_at_lowest / reward_at_highest: mean reward_i at the smallest and largest w_i;
    - gain / gain_ci95: per prompt, reward_i at the largest w_i minus at the smallest, averaged over the prompts
      it applies to at both, with its 95% CI half-width. Paired on prompts, so prompt difficulty cancels: the
      significance test of steering.
    None where undefined: a constant series (spearman), a single level (steps), fewer than two prompts (CI), an
    objective that applies to none of the answers (all)."""
    values = np.asarray(rewards.values if isinstance(rewards, Scores) else rewards, dtype=np.float64)
    applies = rewards.applies.numpy() if isinstance(rewards, Scores) else np.ones(values.shape, dtype=bool)
    out = {}
    for i, name in enumerate(objectives):
        w, v, a = grid[:, i], values[:, :, i], applies[:, :, i]
        levels = np.unique(w)
        per_level = np.stack([_masked_mean(v[w == level], a[w == level], 0) for level in levels])  # [levels, P]
        by_level = np.array([_masked_mean(v[w == level], a[w == level], None) for level in levels])
        steps = np.diff(by_level)
        steps = steps[np.isfinite(steps)]
        means = _masked_mean(v, a, 1)  # [G]
        seen = np.isfinite(means)
        gain = per_level[-1] - per_level[0]
        paired = mean_interval(gain[np.isfinite(gain)])
        out[name] = {"spearman": defined(spearman(w[seen], means[seen])) if seen.sum() > 1 else None,
                     "non_decreasing_steps": float((steps >= 0).mean()) if len(steps) else None,
                     "reward_at_lowest": defined(by_level[0]), "reward_at_highest": defined(by_level[-1]),
                     "gain": paired["mean"], "gain_ci95": paired["ci95"]}
    return out


def paired_gap(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean of a - b over the same pairs ([N] each, e.g. 0/1 correctness) and its 95% CI half-width."""
    mean, half = mean_ci((np.asarray(a, dtype=float) - np.asarray(b, dtype=float))[:, None])
    return {"mean": float(mean[0]), "ci95": float(half[0])}


def head_specialization(matrix: dict) -> dict[str, dict[str, dict[str, float]]]:
    """{objective: {other head: paired_gap}}: on each objective's held-out pairs, how much more often its own head
    prefers the chosen reply than each other head does (`head_matrix` cells with per-pair `correct`)."""
    return {o: {h: paired_gap(matrix[o][o]["correct"], matrix[h][o]["correct"]) for h in matrix if h != o}
            for o in matrix if o in matrix[o]}


def interference(mahalo: dict, alone: dict[str, dict]) -> dict[str, dict[str, float]]:
    """How far each MAHALO head trails DPO on its objective alone, on the same held-out pairs.

    mahalo, alone[objective]: train-mahalo run records (mahalo_run.json, cells from `alignment.mahalo.head_matrix`
    with per-pair `correct`); an objective-only run has one head.
    Per objective k: head k's implicit-reward accuracy on k's pairs, the objective-only run's, and
    `interference` = alone - head, with a 95% CI half-width paired on the pairs ([N] correctness each).
    """
    out = {}
    for objective, run in alone.items():
        (only,) = run["heldout_accuracy"].values()
        ours, theirs = mahalo["heldout_accuracy"][objective][objective]["correct"], only[objective]["correct"]
        if len(ours) != len(theirs):
            raise DataError(f"{objective}: held-out pairs differ ({len(ours)} vs {len(theirs)}); evaluate both runs "
                            f"on the same --eval_data and --max_eval_pairs")
        gap = paired_gap(theirs, ours)
        out[objective] = {"head": float(np.mean(ours)), "alone": float(np.mean(theirs)),
                          "interference": gap["mean"], "ci95": gap["ci95"]}
    return out


def own_objective_scores(scores: Scores | torch.Tensor, sources: Sequence[str], objectives: Sequence[str]) -> torch.Tensor:
    """Each prompt's judged score on the objective its source names (source 'hh-harmless' -> 'harmless',
    'arithmetic' -> 'arithmetic'): scores [P, K] normalised, sources [P] -> [P]. The mixed-intent benchmark's
    per-prompt figure: a harmful request is judged on harmlessness, a problem on its answer. A prompt whose own
    objective does not apply to its reply is refused, naming its source: it has no figure to average."""
    one_hot = source_oracle_weights(sources, objectives)
    if one_hot is None:
        named = {s: [o for o in objectives if o in s.split("-")] for s in dict.fromkeys(sources)}
        raise DataError("every prompt source must name exactly one objective "
                        f"{list(objectives)}; got {', '.join(f'{s!r} -> {o}' for s, o in named.items())}")
    s = as_scores(scores)
    missing = ~(s.applies & one_hot.bool()).any(-1)
    if missing.any():
        i = int(missing.nonzero()[0])
        raise DataError(f"prompt {i} of source {sources[i]!r}: its objective "
                        f"{objectives[int(one_hot[i].argmax())]!r} does not apply to its reply")
    return (s.filled(0.0) * one_hot).sum(-1)


def stratified_bootstrap(values: Sequence[float], sources: Sequence[str], num_samples: int = 2000,
                         seed: int = 0) -> dict[str, dict]:
    """Mean with a 95% percentile-bootstrap CI per source and 'overall' (the mean of the source means, so each
    source counts once however many prompts it has): values [P] (e.g. per-prompt differences of two policies on
    the same prompts, which makes the CI paired), sources [P]. Prompts are resampled within their source.
    Returns {source | "overall": {"mean", "ci95": [lo, hi], "n"}}."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)  # by hand: scipy.stats.bootstrap has no strata, and 'overall' needs joint draws
    groups = {s: v[[x == s for x in sources]] for s in dict.fromkeys(sources)}
    out, boots = {}, []
    for s, g in groups.items():
        b = g[rng.integers(0, len(g), size=(num_samples, len(g)))].mean(1)
        boots.append(b)
        out[s] = {"mean": float(g.mean()), "ci95": [float(x) for x in np.percentile(b, [2.5, 97.5])], "n": len(g)}
    overall = np.mean(boots, axis=0)
    out["overall"] = {"mean": float(np.mean([g.mean() for g in groups.values()])),
                      "ci95": [float(x) for x in np.percentile(overall, [2.5, 97.5])], "n": len(v)}
    return out
