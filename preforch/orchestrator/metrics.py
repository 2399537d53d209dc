"""How well an orchestrator's weights match their targets on held-out prompts: KL against prompt-blind baselines,
prompt-source AUROC per objective, calibration of the predicted top objective, and how sharp the weights are
(entropy by source) (`preforch eval-orchestrator`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import stats

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


def top_objective_calibration(predicted: torch.Tensor, targets: torch.Tensor, num_bins: int = 5) -> dict:
    """Reliability of the predicted top objective: is argmax f(x) the argmax of w*(x) as often as
    max f(x) claims? predicted, targets: [N, K]. Bins span [1/K, 1] evenly.

    Returns per-bin mean confidence, accuracy and count, overall top-1 agreement, and the expected
    calibration error ECE = sum_b (n_b / N) |accuracy_b - confidence_b|.
    """
    n, k = predicted.shape
    conf, top = predicted.max(-1)
    hit = (top == targets.argmax(-1)).double()
    edges = torch.linspace(1.0 / k, 1.0, num_bins + 1, dtype=torch.float64)
    which = torch.bucketize(conf.double(), edges[1:-1], right=True)
    bins, ece = [], 0.0
    for b in range(num_bins):
        mask = which == b
        count = int(mask.sum())
        if count:
            acc, c = hit[mask].mean().item(), conf[mask].double().mean().item()
            ece += count / n * abs(acc - c)
            bins.append({"low": edges[b].item(), "high": edges[b + 1].item(), "count": count,
                         "confidence": c, "accuracy": acc})
    return {"top1_agreement": hit.mean().item(), "ece": ece, "bins": bins}


def weight_entropy(weights: np.ndarray, sources: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Shannon entropy in nats of each weight row (`scipy.stats.entropy`; rows renormalised, 0 log 0 = 0) by
    source: weights [N, K], sources [N] -> {source: {"mean", "sd"}}, sd the sample SD (None for one row). 0 is a
    one-hot row, ln K the uniform one."""
    h = stats.entropy(np.asarray(weights, dtype=np.float64), axis=1)
    by_source = {s: h[np.asarray(sources) == s] for s in dict.fromkeys(sources)}
    return {s: {"mean": float(g.mean()), "sd": float(g.std(ddof=1)) if len(g) > 1 else None}
            for s, g in by_source.items()}
