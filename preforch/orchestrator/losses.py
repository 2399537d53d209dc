"""Orchestrator training losses: PRO's KL to the implicit-preference targets (paper Eq. 8) and the
ArmoRM-style gate objective (Bradley-Terry through the combined reward), alone or mixed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from preforch.orchestrator.config import ORCHESTRATOR_OBJECTIVES


def orchestrator_kl_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean_x KL(w*(x) || f_phi(x)) with f_phi(x) = softmax(logits).

    logits: [B, K] head outputs; targets: [B, K] rows on the simplex. Returns a scalar.
    """
    return F.kl_div(F.log_softmax(logits.float(), dim=-1), targets.float(), reduction="batchmean")


def combined_bradley_terry_loss(logits: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """mean -log sigmoid(softmax(logits) . delta): the gate is trained so the combined reward prefers the
    human-preferred reply (ArmoRM's gating objective). logits [B, K]; delta [B, K] = r~(x, y_w) - r~(x, y_l).

    The softmax runs over the K objectives (dim -1), so each prompt's weights lie on the simplex.
    """
    weights = torch.softmax(logits.float(), dim=-1)
    return -F.logsigmoid((weights * delta.float()).sum(-1)).mean()


def orchestrator_loss(objective: str, logits: torch.Tensor, targets: torch.Tensor, delta: torch.Tensor,
                      hybrid_weight: float = 1.0) -> torch.Tensor:
    """The training loss for `objective`: 'kl' (Eq. 8), 'bradley-terry', or 'hybrid' = KL + hybrid_weight * BT.
    logits, targets, delta: [B, K]."""
    if objective == "kl":
        return orchestrator_kl_loss(logits, targets)
    if objective == "bradley-terry":
        return combined_bradley_terry_loss(logits, delta)
    if objective == "hybrid":
        return orchestrator_kl_loss(logits, targets) + hybrid_weight * combined_bradley_terry_loss(logits, delta)
    raise ValueError(f"objective: expected one of {ORCHESTRATOR_OBJECTIVES}, got {objective!r}")


def kl_per_prompt(predicted: torch.Tensor, targets: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """KL(targets || predicted) per row: [N, K] x [N, K] -> [N] (for evaluation of any predictor)."""
    t = targets.double()
    return (t * (torch.log(t.clamp_min(eps)) - torch.log(predicted.double().clamp_min(eps)))).sum(-1).float()
