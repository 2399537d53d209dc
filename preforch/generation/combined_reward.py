"""The combined reward R(x, y) = sum_i w_i(x) r~_i(x, y) and best-of-N selection by it: the one place every
stage that ranks replies under a weight vector (training rewards, serving, evaluation) takes it from. The sum runs
over the objectives that apply to each reply, their weights renormalised to 1 (rewards/scores.py)."""

from __future__ import annotations

import torch

from preforch.rewards.scores import Scores, combined_reward

__all__ = ["combined_reward", "select_best"]


def select_best(normalized: Scores | torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Index of the best candidate per prompt: normalized [B, N, K], weights [B, K] -> [B]. Never a NaN's index:
    an objective that does not apply to a candidate drops out of its combined reward."""
    return combined_reward(normalized, weights.unsqueeze(1)).argmax(-1)
