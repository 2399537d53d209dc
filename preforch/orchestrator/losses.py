"""Orchestrator training losses: PRO's KL to the implicit-preference targets (paper Eq. 8) and the
ArmoRM-style gate objective (Bradley-Terry through the combined reward), alone or mixed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from preforch.orchestrator.config import ORCHESTRATOR_OBJECTIVES
from preforch.rewards.scores import Scores, as_scores


def orchestrator_kl_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean_x KL(w*(x) || f_phi(x)) with f_phi(x) = softmax(logits).

    logits: [B, K] head outputs; targets: [B, K] rows on the simplex. Returns a scalar.
    """
    return F.kl_div(F.log_softmax(logits.float(), dim=-1), targets.float(), reduction="batchmean")


def combined_bradley_terry_loss(logits: torch.Tensor, delta: Scores | torch.Tensor) -> torch.Tensor:
    """mean -log sigmoid(softmax(logits) . delta): the gate is trained so the combined reward prefers the
    human-preferred reply (ArmoRM's gating objective). logits [B, K]; delta [B, K] = r~(x, y_w) - r~(x, y_l),
    `Scores` (applying where both replies' scores do) or a plain tensor.

    The softmax runs over the K objectives (dim -1), so each prompt's weights lie on the simplex. The margin sums over
    the objectives that apply to the pair; one that does not contributes nothing, so weight put on it only dilutes
    the margin and the orchestrator learns to put none there. (Renormalising the weights over the applicable
    objectives, as the combined reward does, would leave that weight free: trained so on the mixed-intent benchmark,
    the orchestrator put 0.85 on exact match for chat prompts, which a WiC tag or a reader would take at face value.)
    """
    d = as_scores(delta)
    return -F.logsigmoid((torch.softmax(logits.float(), dim=-1) * d.filled(0.0).to(logits.device)).sum(-1)).mean()


def orchestrator_loss(objective: str, logits: torch.Tensor, targets: torch.Tensor, delta: Scores | torch.Tensor,
                      hybrid_weight: float = 1.0) -> torch.Tensor:
    """The training loss for `objective`: 'kl' (Eq. 8), 'bradley-terry', or 'hybrid' = KL + hybrid_weight * BT.
    logits, targets, delta: [B, K] (targets 0 where an objective does not apply, delta `Scores` or a plain tensor)."""
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
