"""Step scorers for guided decoding: a candidate prefix's score per objective, combined by w (the sum of the
normalised step scores; MAHALO guides by one objective at a time, the combination is ours).

- helpful / harmless (any objective of a reward ensemble): the ensemble's reward models applied to the prefix,
  z-scored with the ensemble's stored normalisation (as MAHALO applies outcome reward models to prefixes);
- arithmetic: the exact-answer checker on finished replies, and on unfinished ones a value head's estimate
  (`value_head.py`, MAHALO's value model) or a Monte Carlo value: the share of rollouts from the prefix that the
  checker accepts (the baseline, and what the value head is trained to predict).

A checker's value lies in [0, 1] while the reward models' scores are z-scores, so w would weigh them on two
scales; `checker_zscores` z-scores the value too. A value is an expected checker score, and a z-score is affine, so
the z-scored value is the expected z-scored checker score: with the guide's own statistics for that objective (an
exact_match rule in the ensemble), a finished reply scores exactly what the ensemble gives it; without them,
`BALANCED`'s, which map right to +1 and wrong to -1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from preforch.data.arithmetic import check, exact_match
from preforch.data.schema import Message

if TYPE_CHECKING:
    from preforch.rewards.ensemble import RewardEnsemble


BALANCED = (0.5, 0.5)
"""(mean, std) of a checker's 0/1 score over a large reference set half right and half wrong: the z-score that puts
right at +1 and wrong at -1, the spread a reward model's z-scored replies have."""


def checker_statistics(ensemble: RewardEnsemble, objective: str) -> tuple[float, float]:
    """(mean, std) that z-score a checker's value of `objective`: the ensemble's stored statistics when it scores
    that objective with the same checker (the exact_match rule), else `BALANCED`."""
    same_checker = any(objective in src.objectives and getattr(src, "fn", None) is exact_match
                       for src in ensemble.sources)
    if not same_checker or ensemble.normalizer is None:
        return BALANCED
    k = ensemble.objectives.index(objective)
    return float(ensemble.normalizer.mean[k]), float(ensemble.normalizer.std[k])


class EnsembleStepScorer:
    """Prefix scores of the policy's `objectives` [N, K]: the ensemble's normalised reward for objectives it has,
    0 (no guidance) for the others."""

    def __init__(self, ensemble: RewardEnsemble, objectives: Sequence[str]):
        self.ensemble, self.objectives = ensemble, tuple(objectives)
        self.columns = [ensemble.objectives.index(o) if o in ensemble.objectives else None for o in objectives]

    def scores(self, prompt: Sequence[Message], prefixes: Sequence[str]) -> torch.Tensor:
        normalized = self.ensemble.score([tuple(prompt)] * len(prefixes), list(prefixes))  # [N, K_ensemble]
        zero = torch.zeros(len(prefixes))
        return torch.stack([normalized[:, c].float() if c is not None else zero for c in self.columns], dim=1)

    def checker_zscores(self, objective: str, values: torch.Tensor) -> torch.Tensor:
        """A checker's values [N] of `objective` (1 right, 0 wrong, or a probability of right) as z-scores [N] on the
        scale of `scores` (`checker_statistics`)."""
        mean, std = checker_statistics(self.ensemble, objective)
        return (values.float() - mean) / std


def arithmetic_step_value(prefix: str, answer: int, finished: bool, rollout: Callable[[str, int], list[str]],
                          num_rollouts: int, value: float | None = None) -> float:
    """The checker (1 or 0) on a finished reply; else `value` when given (a value head's, `value_head.py`), else
    the Monte Carlo value: the share of `num_rollouts` completions of the prefix (`rollout(prefix, n)` -> n
    continuation texts) whose prefix + continuation the checker accepts."""
    if finished:
        return float(check(prefix, answer))
    if value is not None:
        return value
    return sum(check(prefix + c, answer) for c in rollout(prefix, num_rollouts)) / num_rollouts
