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
exact_match rule in the ensemble, fitted on the replies it applies to), a finished reply scores exactly what the
ensemble gives it; without them, `BALANCED`'s, which map right to +1 and wrong to -1.

Step scores are `Scores`: an objective the guide says does not apply to a prefix (exact match on a prompt that is no
problem) drops out of the combined step reward, its weight renormalised over the others (rewards/scores.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from preforch.data.arithmetic import check, exact_match
from preforch.data.schema import Message
from preforch.rewards.scores import Scores

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
    """Prefix scores of the policy's `objectives` [N, K]: the ensemble's normalised reward where it applies for
    objectives it has, 0 (no guidance) for the others."""

    def __init__(self, ensemble: RewardEnsemble, objectives: Sequence[str]):
        self.ensemble, self.objectives = ensemble, tuple(objectives)
        # an objective the ensemble lacks reads the column of zeros `scores` appends after the ensemble's K
        self.columns = [ensemble.objectives.index(o) if o in ensemble.objectives else ensemble.num_objectives
                        for o in objectives]

    def scores(self, prompt: Sequence[Message], prefixes: Sequence[str]) -> Scores:
        normalized = self.ensemble.score([tuple(prompt)] * len(prefixes), list(prefixes))  # [N, K_ensemble]
        unguided = Scores.dense(torch.zeros(len(prefixes), 1))
        return Scores.cat([normalized, unguided], dim=-1)[:, self.columns]

    def checker_zscores(self, objective: str, values: torch.Tensor) -> torch.Tensor:
        """A checker's values [N] of `objective` (1 right, 0 wrong, or a probability of right) as z-scores [N] on the
        scale of `scores` (`checker_statistics`)."""
        mean, std = checker_statistics(self.ensemble, objective)
        return (values.float() - mean) / std


def with_column(scores: Scores, k: int, values: torch.Tensor) -> Scores:
    """`scores` [N, K] with column k replaced by `values` [N], applying on every row (a checker judged each)."""
    v, a = scores.values.clone(), scores.applies.clone()
    v[:, k], a[:, k] = values, True
    return Scores(v, a)


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
