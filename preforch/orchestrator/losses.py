"""Orchestrator training loss (paper Eq. 8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def orchestrator_kl_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean_x KL(w*(x) || f_phi(x)) with f_phi(x) = softmax(logits).

    logits: [B, K] head outputs; targets: [B, K] rows on the simplex. Returns a scalar.
    """
    return F.kl_div(F.log_softmax(logits.float(), dim=-1), targets.float(), reduction="batchmean")


def kl_per_prompt(predicted: torch.Tensor, targets: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """KL(targets || predicted) per row: [N, K] x [N, K] -> [N] (for evaluation of any predictor)."""
    t = targets.double()
    return (t * (torch.log(t.clamp_min(eps)) - torch.log(predicted.double().clamp_min(eps)))).sum(-1).float()
