"""Per-objective z-score normalisation of raw rewards (DESIGN.md section 1).

Statistics are fitted once on a reference set (chosen and rejected responses of the preference data)
and stored with the ensemble; they are never re-fitted per batch. Each objective is fitted on the replies it
applies to (`Scores.applies`): exact match's mean is the share right on problems, not diluted by chat replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from preforch.errors import ConfigError, PreforchError
from preforch.rewards.scores import Scores, as_scores


@dataclass(frozen=True)
class ZScore:
    """mean, std: [K] tensors; `num_samples` records the size of the reference set, `counts` [K] how many of its
    replies each objective applied to (None in files written before applicability was recorded)."""

    mean: torch.Tensor
    std: torch.Tensor
    num_samples: int
    counts: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "num_samples": self.num_samples,
                "counts": None if self.counts is None else list(self.counts)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "normalization") -> "ZScore":
        """The statistics `to_dict` wrote; a `ConfigError` naming `where` for a mean that is not finite or a std that
        is not finite and > 0 (a z-score by it would be inf or NaN)."""
        counts = d.get("counts")
        mean, std = torch.tensor(d["mean"], dtype=torch.float64), torch.tensor(d["std"], dtype=torch.float64)
        for name, values, ok in (("mean", mean, mean.isfinite()), ("std", std, std.isfinite() & (std > 0))):
            if not ok.all():
                i = int((~ok).nonzero()[0])
                raise ConfigError(f"{where}: {name}[{i}] is {values[i].item()}; it must be finite"
                                  f"{' and > 0' if name == 'std' else ''} (refit it: preforch build-ensemble)")
        return cls(mean.float(), std.float(), int(d["num_samples"]),
                   None if counts is None else tuple(int(c) for c in counts))


def fit_zscore(raw: Scores | torch.Tensor, eps: float = 1e-6, objectives: Sequence[str] | None = None,
               skip: Sequence[int] = ()) -> ZScore:
    """Fit statistics on reference rewards `raw` [N, K], each objective over the replies it applies to. An objective
    with zero spread gets std 1; one that applies to fewer than 2 replies is refused, named by `objectives`. The
    columns in `skip` are fitted elsewhere (`replace_objectives`): here they get mean 0, std 1 and count 0."""
    raw = as_scores(raw)
    if raw.values.dim() != 2 or raw.shape[0] < 2:
        raise PreforchError(f"normalisation needs at least 2 reference samples of shape [N, K], got {tuple(raw.shape)}")
    if torch.isinf(raw.values).any():
        raise PreforchError("normalisation reference rewards contain inf")
    fitted = torch.ones(raw.shape[1], dtype=torch.bool)
    fitted[list(skip)] = False
    applies = raw.applies & fitted
    counts = applies.sum(0)
    few = (counts < 2) & fitted
    if few.any():
        names = objectives or [str(k) for k in range(raw.shape[1])]
        named = {names[k]: int(counts[k]) for k in few.nonzero().flatten().tolist()}
        raise PreforchError(f"normalisation: objective(s) {named} apply to fewer than 2 of the {raw.shape[0]} reference "
                            "replies; add reference data they apply to (--reference_data or --objective_reference)")
    values = torch.where(applies, raw.values.double(), torch.nan)
    mean = values.nanmean(0).nan_to_num(0.0)
    std = ((values - mean).pow(2).nansum(0) / (counts - 1).clamp_min(1)).sqrt()
    std = torch.where((std < eps) | ~fitted, torch.ones_like(std), std)
    return ZScore(mean.float(), std.float(), raw.shape[0], tuple(counts.tolist()))


def apply_zscore(raw: Scores | torch.Tensor, stats: ZScore) -> Scores | torch.Tensor:
    """r~ = (r - mu) / sigma, broadcast over the last dim: raw [..., K] -> [..., K], of the same type (a mask stays)."""
    if isinstance(raw, Scores):
        return Scores(apply_zscore(raw.values, stats), raw.applies)
    return (raw - stats.mean.to(raw)) / stats.std.to(raw)


def replace_objectives(stats: ZScore, other: ZScore, columns: list[int]) -> ZScore:
    """`stats` with the objectives at `columns` taken from `other` (both [K]): an objective fitted on a reference
    set of its own."""
    mean, std = stats.mean.clone(), stats.std.clone()
    mean[columns], std[columns] = other.mean[columns], other.std[columns]
    counts = None
    if stats.counts is not None and other.counts is not None:
        counts = tuple(other.counts[k] if k in columns else c for k, c in enumerate(stats.counts))
    return ZScore(mean, std, stats.num_samples, counts)
