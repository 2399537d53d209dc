"""MOSLIM's math (arXiv 2505.20336): per-head intensity classification and the mapping to one scalar reward.

A classification reward model has H heads; head h sorts a (prompt, response) into L_h ordinal levels. Heads
are stacked as one padded tensor of probabilities [B, H, L] (L = max L_h; a head's missing levels have
probability 0). The prompt names a requested level per head, or leaves the head out (masked, level -1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

Mapping = Literal["probability", "expected", "distance"]
MAPPINGS: tuple[str, ...] = ("probability", "expected", "distance")
MASKED = -1
STD_FLOOR = 1e-4  # a level no reference response ever reaches has std 0; this keeps its z-score finite


def head_probabilities(logits: torch.Tensor, num_levels: Sequence[int]) -> torch.Tensor:
    """Concatenated head logits [B, sum L_h] -> padded per-head softmax probabilities [B, H, max L_h]."""
    out = logits.new_zeros(len(logits), len(num_levels), max(num_levels), dtype=torch.float32)
    for h, chunk in enumerate(logits.split(list(num_levels), dim=-1)):
        out[:, h, :chunk.shape[-1]] = chunk.float().softmax(-1)
    return out


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, num_levels: Sequence[int]) -> torch.Tensor:
    """MOSLIM's reward-model loss: cross-entropy of each head on its labelled examples, summed over heads.

    logits [B, sum L_h]; labels [B, H] long, MASKED (-1) where the example has no label for that head (an HH
    helpfulness pair says nothing about harmlessness). A head with no label in the batch adds 0.
    """
    loss = logits.new_zeros(())
    for h, chunk in enumerate(logits.split(list(num_levels), dim=-1)):
        if (labels[:, h] != MASKED).any():
            loss = loss + F.cross_entropy(chunk.float(), labels[:, h], ignore_index=MASKED)
    return loss


def expected_level(probs: torch.Tensor) -> torch.Tensor:
    """E[level] = sum_l l * p[l] per head: probs [B, H, L] -> [B, H]."""
    return (probs * torch.arange(probs.shape[-1], dtype=probs.dtype)).sum(-1)


@dataclass(frozen=True)
class LevelStats:
    """Reference-set statistics, fitted once and stored with the classifier (never re-fitted per batch).

    mean, std [H, L]: of each head's probability of each level; level_mean, level_std [H]: of its expected level.
    """

    mean: torch.Tensor
    std: torch.Tensor
    level_mean: torch.Tensor
    level_std: torch.Tensor
    num_samples: int

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "level_mean": self.level_mean.tolist(),
                "level_std": self.level_std.tolist(), "num_samples": self.num_samples}

    @classmethod
    def from_dict(cls, d: dict) -> "LevelStats":
        return cls(torch.tensor(d["mean"]), torch.tensor(d["std"]), torch.tensor(d["level_mean"]),
                   torch.tensor(d["level_std"]), int(d["num_samples"]))


def fit_level_stats(probs: torch.Tensor) -> LevelStats:
    """Statistics of probs [N, H, L] over a reference set (N responses); std floored at STD_FLOOR."""
    level = expected_level(probs)
    return LevelStats(probs.mean(0), probs.std(0).clamp_min(STD_FLOOR), level.mean(0),
                      level.std(0).clamp_min(STD_FLOOR), len(probs))


def mapped_reward(probs: torch.Tensor, targets: torch.Tensor, stats: LevelStats, num_levels: Sequence[int],
                  mapping: Mapping = "probability") -> tuple[torch.Tensor, torch.Tensor]:
    """One scalar reward per response from head probabilities (MOSLIM Eq. 11 and two variants).

    probs [B, H, L]; targets [B, H] long, the requested level per head or MASKED; num_levels: L_h per head.
    With mask_h = targets_h >= 0 and k = number of named heads (per row), r = (1/k) sum_h mask_h s_h, where s_h is
    - 'probability' (Eq. 11): (p_h[t_h] - mean[h, t_h]) / std[h, t_h], the z-scored probability of the requested
      level (statistics per level, so a low and a high request are on the same scale);
    - 'expected': z_h * (2 t_h / (L_h - 1) - 1), z_h the z-scored expected level: pushes the level up for the top
      request, down for the bottom one, and not at all for the middle;
    - 'distance': -|E_h - t_h| / level_std[h], penalising overshoot as much as falling short.
    A row with every head masked gets 0. Returns (rewards [B], per-head terms s [B, H], 0 where masked).
    'probability' is the default: the only one with a signal at every requested level ('expected' has none for the
    middle level) and no worse than the others on held-out replies of known level (docs/results.md, MOSLIM).
    """
    mask = targets != MASKED
    t = targets.clamp_min(0)
    if mapping == "probability":
        p_t = probs.gather(-1, t[..., None]).squeeze(-1)
        idx = torch.arange(probs.shape[1])
        terms = (p_t - stats.mean[idx, t]) / stats.std[idx, t]
    else:
        level = expected_level(probs)
        top = torch.tensor(num_levels, dtype=probs.dtype) - 1  # [H]
        if mapping == "expected":
            terms = (level - stats.level_mean) / stats.level_std * (2 * t / top - 1)
        elif mapping == "distance":
            terms = -(level - t).abs() / stats.level_std
        else:
            raise ValueError(f"mapping: expected one of {MAPPINGS}, got {mapping!r}")
    terms = torch.where(mask, terms, torch.zeros_like(terms))
    return terms.sum(-1) / mask.sum(-1).clamp_min(1), terms


def calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """Expected calibration error (Guo et al. 2017) of one head: probs [N, L], labels [N] long. Predictions are
    binned by top-class confidence; ECE = sum_b |B_b|/N * |accuracy_b - confidence_b|."""
    conf, pred = probs.max(-1)
    hit = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.float().mean().item() * abs(hit[inside].mean().item() - conf[inside].mean().item())
    return ece
