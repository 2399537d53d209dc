"""Reward-model training loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, center_coefficient: float = 0.0) -> torch.Tensor:
    """Pairwise loss of paper Eq. 2: -log sigmoid(r(x, y_w) - r(x, y_l)), averaged over the batch.

    chosen, rejected: [B] rewards of the preferred / rejected responses. `center_coefficient` adds
    c * mean((r_w + r_l)^2) (Eisenstein et al. 2023; TRL's `center_rewards_coefficient`). Why: the BT loss
    is blind to any prompt-dependent offset of the reward, yet PRO's targets (Eq. 7) read absolute
    normalised scores, so the offset must be pinned to zero rather than left to chance.
    """
    loss = -F.logsigmoid(chosen - rejected).mean()
    if center_coefficient:
        loss = loss + center_coefficient * ((chosen + rejected) ** 2).mean()
    return loss
