"""Judging preference weights by human labels (docs/design.md, "Judging weights by human labels").

A weighting w(x) is good if the combined reward `w(x) . r~(x, y)` prefers what people preferred. For a
held-out pair the combined margin is `w(x) . (r~(x, y_w) - r~(x, y_l))`; its sign against the human label
compares any weighting on one footing: uniform, one objective alone, the best fixed vector, the
orchestrator, a gate, the per-source oracle.

Score differences come as `Scores` (or plain tensors, every objective applying): a margin runs over the objectives
that apply to the pair, their weights renormalised (rewards/scores.py), so a weighting whose applicable weights are
all 0 ties the pair.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from preforch.data.weights import simplex_grid
from preforch.rewards.scores import Scores, as_scores, combined_reward


def combined_margins(weights: torch.Tensor, delta: Scores | torch.Tensor) -> torch.Tensor:
    """Per-pair margins of the combined reward: weights [N, K] (or [K]) x delta [N, K] -> [N], where
    delta = r~(x, y_w) - r~(x, y_l) (normalised scores of the chosen minus the rejected reply), over the
    objectives that apply to the pair with the weights renormalised (`combined_reward`)."""
    return combined_reward(delta, weights)


def margin_hits(margins: torch.Tensor) -> torch.Tensor:
    """Margins [...] -> hits in {0, 0.5, 1}: 1 where positive (agrees with the label), 0.5 on an exact tie."""
    return (margins > 0).float() + 0.5 * (margins == 0).float()


def pair_hits(weights: torch.Tensor, delta: Scores | torch.Tensor) -> torch.Tensor:
    """[N] in {0, 0.5, 1}: 1 where the combined reward prefers the chosen reply, 0.5 on an exact tie."""
    return margin_hits(combined_margins(weights, delta))


def preference_accuracy(weights: torch.Tensor, delta: Scores | torch.Tensor) -> float:
    """Share of pairs whose combined margin agrees with the human label (ties count half)."""
    return float(pair_hits(weights, delta).mean()) if len(delta) else float("nan")


def best_fixed_weights(delta: Scores | torch.Tensor, divisions: int = 20) -> tuple[torch.Tensor, float]:
    """The fixed vector of the simplex lattice (step 1/divisions) with the highest accuracy on `delta` [N, K].
    Returns (w [K], accuracy); ties go to the vector closest to uniform, the least committal one."""
    grid = torch.tensor(simplex_grid(delta.shape[-1], divisions), dtype=torch.float32)  # [M, K]
    # Renormalising the applicable weights divides a margin by their positive mass, or makes it a tie where that mass
    # is 0, exactly when the margin with inapplicable differences read as 0 is 0 too: the hits are those of one matmul.
    acc = margin_hits(as_scores(delta).filled(0.0) @ grid.T).mean(0)  # [M]
    spread = (grid - 1.0 / grid.shape[1]).pow(2).sum(-1)
    best = max(range(len(grid)), key=lambda i: (round(float(acc[i]), 9), -float(spread[i])))
    return grid[best], float(acc[best])


def source_oracle_weights(sources: Sequence[str], objectives: Sequence[str]) -> torch.Tensor | None:
    """All weight on the objective a pair's source names (e.g. source 'hh-harmless' -> 'harmless'): [N, K].

    None unless every source names exactly one objective. An upper reference for prompt-aware weights
    where the data's origin says which objective its labels judge; never a training signal.
    """
    one_hot = torch.zeros(len(sources), len(objectives))
    for i, s in enumerate(sources):
        named = [k for k, o in enumerate(objectives) if o in s.split("-")]
        if len(named) != 1:
            return None
        one_hot[i, named[0]] = 1.0
    return one_hot


def source_objective_accuracy(delta: Scores | torch.Tensor, sources: Sequence[str],
                              objectives: Sequence[str]) -> dict[str, float]:
    """For each objective a source names: the share of that source's pairs whose own score difference is
    positive, i.e. the reward model's held-out pairwise accuracy read off the ensemble's normalised scores
    (delta [N, K]; z-scoring does not change a sign). Only pairs the objective applies to count; an objective
    that applies to none of its source's pairs has no accuracy and is left out."""
    oracle = source_oracle_weights(sources, objectives)
    if oracle is None:
        return {}
    d = as_scores(delta)
    judged = (oracle == 1) & d.applies  # [N, K]
    hits = margin_hits(d.filled(0.0))
    return {o: float(hits[judged[:, k], k].mean()) for k, o in enumerate(objectives) if judged[:, k].any()}


def paired_bootstrap(hits_a: torch.Tensor, hits_b: torch.Tensor, num_samples: int = 2000, seed: int = 0) -> dict:
    """Accuracy margin of weighting a over b on the same pairs, with a 95% percentile-bootstrap CI.

    hits_a, hits_b: [N] per-pair hits (`pair_hits`). Pairs are resampled jointly, so what both get right or
    wrong cancels: much tighter than comparing two separate CIs.
    """
    diff = (hits_a.double() - hits_b.double()).numpy()
    return {"margin": float(diff.mean()), "ci95": percentile_bootstrap(diff, num_samples, seed)}


def accuracy_ci(hits: torch.Tensor, num_samples: int = 2000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap CI of one weighting's accuracy from its per-pair hits [N]."""
    return percentile_bootstrap(hits.double().numpy(), num_samples, seed)


def percentile_bootstrap(values: np.ndarray, num_samples: int = 2000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap CI [lo, hi] of the mean of values [N] (`scipy.stats.bootstrap`); a constant
    sample's interval is that constant."""
    from scipy import stats

    if np.ptp(values) == 0:  # scipy leaves a degenerate sample's interval undefined
        return [float(values[0])] * 2
    ci = stats.bootstrap((values,), np.mean, n_resamples=num_samples, method="percentile",
                         rng=np.random.default_rng(seed)).confidence_interval
    return [float(ci.low), float(ci.high)]


def format_human_labels(table: dict, title: str) -> str:
    """`human_label_table`'s result as console lines: accuracy [CI] per weighting, then the margins."""
    lines = [f"{title}: combined-reward accuracy on {table['num_pairs']} pairs (95% CI)"]
    lines += [f"  {name:<36} {r['accuracy']:.3f}  [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" for name, r in table["rows"].items()]
    lines += [f"  margin {name:<29} {m['margin']:+.3f}  [{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]"
              for name, m in table.get("margins", {}).items()]
    lines += [f"  {source} alone ({acc['n']} pairs): " + ", ".join(f"{name} {a:.3f}" for name, a in acc.items() if name != "n")
              for source, acc in table.get("by_source", {}).items()]
    return "\n".join(lines)


def human_label_table(delta: Scores | torch.Tensor, objectives: Sequence[str], weightings: dict[str, torch.Tensor],
                      sources: Sequence[str] | None = None, compare_to: str = "orchestrator",
                      divisions: int = 20, seed: int = 0) -> dict:
    """Combined-reward accuracy on held-out pairs for every weighting, with CIs.

    delta: [N, K] chosen-minus-rejected normalised scores (`Scores` or a plain tensor). weightings: name -> [N, K]
    or [K] (e.g. 'orchestrator', 'best fixed (validation)'). Adds uniform, each objective alone, the best fixed vector
    chosen on these same pairs ('best fixed (test, ceiling)': an optimistic reference, it peeks at the
    labels) and the per-source oracle when sources name objectives. When `compare_to` is among the
    weightings, its paired-bootstrap margin over every other row is reported too; with several sources, every
    row's accuracy on each source alone (`by_source`: {source: {"n", name: accuracy}}).
    """
    k = len(objectives)
    rows: dict[str, torch.Tensor] = {"uniform": torch.full((k,), 1.0 / k)}
    rows.update({f"{o} only": torch.eye(k)[i] for i, o in enumerate(objectives)})
    ceiling, _ = best_fixed_weights(delta, divisions)
    rows["best fixed (test, ceiling)"] = ceiling
    rows.update(weightings)
    oracle = source_oracle_weights(sources, objectives) if sources is not None else None
    if oracle is not None:
        rows["per-source oracle"] = oracle
    hits = {name: pair_hits(w, delta) for name, w in rows.items()}
    table = {}
    for name, w in rows.items():
        entry = {"accuracy": float(hits[name].mean()), "ci95": accuracy_ci(hits[name], seed=seed)}
        if w.dim() == 1:
            entry["weights"] = dict(zip(objectives, [round(float(x), 4) for x in w]))
        table[name] = entry
    result = {"num_pairs": len(delta), "rows": table}
    if sources is not None and len(set(sources)) > 1:  # a source the orchestrator gets for free must not hide another
        result["by_source"] = {s: {"n": int(m.sum()), **{name: float(h[m].mean()) for name, h in hits.items()}}
                               for s in dict.fromkeys(sources) for m in [torch.tensor([x == s for x in sources])]}
    if compare_to in hits:
        result["margins"] = {f"{compare_to} - {name}": paired_bootstrap(hits[compare_to], h, seed=seed)
                             for name, h in hits.items() if name != compare_to}
    return result
