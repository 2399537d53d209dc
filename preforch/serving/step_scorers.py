"""Step scorers for guided decoding: a candidate prefix's score per objective, combined by w (the sum of the
normalised step scores; MAHALO guides by one objective at a time, the combination is ours).

- helpful / harmless (any objective of a reward ensemble): the ensemble's reward models applied to the prefix,
  z-scored with the ensemble's stored normalisation (as MAHALO applies outcome reward models to prefixes);
- arithmetic: the exact-answer checker on finished replies, and on unfinished ones a value head's estimate
  (`value_head.py`, MAHALO's value model) or a Monte Carlo value: the share of rollouts from the prefix that the
  checker accepts (the baseline, and what the value head is trained to predict).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from preforch.data.arithmetic import check
from preforch.data.schema import Message

if TYPE_CHECKING:
    from preforch.rewards.ensemble import RewardEnsemble


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
