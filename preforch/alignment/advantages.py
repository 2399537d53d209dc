"""Advantages where a prompt's own weights keep their magnitude: per-objective normalisation (GDPO; TRL's
`multi_objective_aggregation="normalize_then_sum"`) with each prompt's w(x) in place of TRL's one `reward_weights`
vector (docs/design.md, "What a per-prompt weight changes in each training signal").

TRL's default GRPO sums the weighted rewards, then normalises within each group: only the direction of a
prompt's w over the objectives that vary in its group survives. Normalising each objective within its group first
and summing with w(x) after keeps w(x)'s magnitude, and its contrast between prompts, until the final batch-wide
scaling.
"""

from __future__ import annotations

import torch
from trl.trainer.utils import nanstd

from preforch.rewards.scores import applicable_weights

EPS = 1e-4  # TRL's


def normalize_then_sum(rewards: torch.Tensor, weights: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Per-prompt weighted normalise-then-sum advantages.

    rewards [B, K]: each completion's normalised reward per objective, NaN where the objective does not apply;
    consecutive groups of `num_generations` rows are one prompt's completions. weights [B, K]: each row's prompt
    weights w(x) on the simplex. Per group and objective k: a_k = (r_k - mean_g r_k) / (std_g r_k + eps) over the
    completions k applies to; then A = sum_k w~_k(x) a_k with w~ the weights renormalised over the objectives that
    apply (`applicable_weights`); finally A is normalised over the batch, (A - mean) / (std + eps). Returns [B].
    With one w for every row this is TRL's `normalize_then_sum` with `reward_weights = w`.
    """
    b, k = rewards.shape
    grouped = rewards.view(-1, num_generations, k)
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    std = nanstd(grouped, dim=1, keepdim=True) if num_generations > 1 else torch.zeros_like(mean)
    # an objective applying to a single completion of a group has no std (NaN): it adds nothing there, as in TRL
    per_objective = ((grouped - mean) / (std + EPS)).view(b, k)
    applies = ~rewards.isnan()
    summed = (per_objective.nan_to_num(0.0) * applicable_weights(weights, applies, "normalize-then-sum")).sum(-1)
    spread = nanstd(summed) if b > 1 else torch.zeros(())
    return (summed - summed.mean()) / (spread + EPS)
