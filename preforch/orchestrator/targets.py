"""Training targets of the orchestrator (paper Eq. 6-7)."""

from __future__ import annotations

import torch

from preforch.rewards.scores import Scores, as_scores, masked_softmax


def implicit_preference_weights(normalized_rewards: Scores | torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """w*(x) = softmax(r~(x, y_w) / tau): the preference implied by the preferred response's scores.

    normalized_rewards: [N, K] z-scored rewards of the chosen responses (Eq. 6), `Scores` or a plain tensor (every
    objective applying). Returns [N, K] rows on the simplex (Eq. 7), the softmax running over the objectives that
    apply: one that does not gets weight 0, as the reply says nothing about it. Lower tau gives sharper targets.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    s = as_scores(normalized_rewards)
    return masked_softmax(s.filled(0.0) / tau, s.applies, "implicit preference weights")
