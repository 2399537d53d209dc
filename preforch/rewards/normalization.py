"""Per-objective z-score normalisation of raw rewards (DESIGN.md section 1).

Statistics are fitted once on a reference set (chosen and rejected responses of the preference data)
and stored with the ensemble; they are never re-fitted per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from preforch.errors import PreforchError


@dataclass(frozen=True)
class ZScore:
    """mean, std: [K] tensors; `num_samples` records the size of the reference set."""

    mean: torch.Tensor
    std: torch.Tensor
    num_samples: int

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "num_samples": self.num_samples}

    @classmethod
    def from_dict(cls, d: dict) -> "ZScore":
        return cls(torch.tensor(d["mean"]), torch.tensor(d["std"]), int(d["num_samples"]))


def fit_zscore(raw: torch.Tensor, eps: float = 1e-6) -> ZScore:
    """Fit statistics on reference rewards `raw` [N, K]. An objective with zero spread gets std 1."""
    if raw.dim() != 2 or raw.shape[0] < 2:
        raise PreforchError(f"normalisation needs at least 2 reference samples of shape [N, K], got {tuple(raw.shape)}")
    if not torch.isfinite(raw).all():
        raise PreforchError("normalisation reference rewards contain NaN or inf")
    raw = raw.double()
    std = raw.std(0)
    std = torch.where(std < eps, torch.ones_like(std), std)
    return ZScore(raw.mean(0).float(), std.float(), raw.shape[0])


def apply_zscore(raw: torch.Tensor, stats: ZScore) -> torch.Tensor:
    """r~ = (r - mu) / sigma, broadcast over the last dim: raw [..., K] -> [..., K]."""
    return (raw - stats.mean.to(raw)) / stats.std.to(raw)


def replace_objectives(stats: ZScore, other: ZScore, columns: list[int]) -> ZScore:
    """`stats` with the objectives at `columns` taken from `other` (both [K]): an objective fitted on a reference
    set of its own."""
    mean, std = stats.mean.clone(), stats.std.clone()
    mean[columns], std[columns] = other.mean[columns], other.std[columns]
    return ZScore(mean, std, stats.num_samples)
