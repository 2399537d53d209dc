"""Training targets of the orchestrator (paper Eq. 6-7)."""

from __future__ import annotations

import torch


def implicit_preference_weights(normalized_rewards: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """w*(x) = softmax(r~(x, y_w) / tau): the preference implied by the preferred response's scores.

    normalized_rewards: [N, K] z-scored rewards of the chosen responses (Eq. 6).
    Returns [N, K] rows on the simplex (Eq. 7). Lower tau gives sharper targets.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    return torch.softmax(normalized_rewards.float() / tau, dim=-1)
