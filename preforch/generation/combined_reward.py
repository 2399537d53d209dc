"""The combined reward R(x, y) = sum_i w_i(x) r~_i(x, y) and best-of-N selection by it: the one place every
stage that ranks replies under a weight vector (training rewards, serving, evaluation) takes it from."""

from __future__ import annotations

import torch


def combined_reward(normalized: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """R(x, y) = sum_i w_i r~_i(x, y) (paper Eq. 4 with w = f_phi(x) as in Eq. 9).

    normalized: [..., K] normalised rewards; weights: [..., K] broadcastable to it. Returns [...].
    """
    return (normalized * weights).sum(-1)


def select_best(normalized: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Index of the best candidate per prompt: normalized [B, N, K], weights [B, K] -> [B]."""
    return combined_reward(normalized, weights.unsqueeze(1)).argmax(-1)
