"""Metrics shared by reports: orchestrator KL against baselines and prompt-source AUROC."""

from __future__ import annotations

from typing import Sequence

import torch

from preforch.errors import PreforchError
from preforch.orchestrator.losses import kl_per_prompt


def kl_against_baselines(predicted: torch.Tensor, targets: torch.Tensor, train_targets: torch.Tensor) -> dict[str, float]:
    """Held-out mean KL(w* || .) for a predictor [N, K] vs the uniform predictor and the constant
    predictor equal to the mean training target (the best prompt-blind guess)."""
    n, k = targets.shape
    uniform = torch.full_like(targets, 1.0 / k)
    constant = train_targets.mean(0, keepdim=True).expand(n, k)
    return {
        "orchestrator": kl_per_prompt(predicted, targets).mean().item(),
        "uniform": kl_per_prompt(uniform, targets).mean().item(),
        "constant_mean_target": kl_per_prompt(constant, targets).mean().item(),
    }


def source_auroc(weights: torch.Tensor, sources: Sequence[str], positive: str, objectives: Sequence[str]) -> dict[str, float]:
    """AUROC of each objective's weight [N, K] for telling prompts from source `positive` apart from
    all others (0.5 = chance; below 0.5 = that weight is higher for the other prompts)."""
    from sklearn.metrics import roc_auc_score

    labels = [s == positive for s in sources]
    if all(labels) or not any(labels):
        raise PreforchError(f"AUROC needs prompts from source {positive!r} and from others; sources are {sorted(set(sources))}")
    return {o: float(roc_auc_score(labels, weights[:, i].numpy())) for i, o in enumerate(objectives)}
