"""The reward of Pro-MORLHF / MORLHF as a TRL reward function (GRPOTrainer, RLOOTrainer).

TRL hands every extra dataset column to reward functions as a keyword argument, one value per
completion, so each prompt's weight vector travels in a `weights` column: computed once per prompt
(orchestrator, fixed or one-hot), never per step. A `solution` or `answer` column travels on to the ensemble's
rules (exact match reads the right answer there, as TRL's accuracy rewards read `solution`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from preforch.data.weights import check_simplex
from preforch.errors import ConfigError, DataError
from preforch.generation.combined_reward import combined_reward
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.scores import Scores

RULE_COLUMNS = ("solution", "answer")  # dataset columns handed on to the ensemble's rules (`rule_columns`)


def completion_text(completion) -> str:
    """TRL passes a completion as a string (standard format) or a list of messages (conversational)."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def prompt_messages(prompt) -> tuple[dict, ...]:
    return ({"role": "user", "content": prompt},) if isinstance(prompt, str) else tuple(prompt)


def rule_columns(columns: dict) -> dict[str, list]:
    """The `RULE_COLUMNS` among TRL's reward-function keyword arguments (one value per completion): what the
    ensemble's rules may judge by. The others (weights, source, trainer_state, ...) are not theirs."""
    return {name: list(columns[name]) for name in RULE_COLUMNS if columns.get(name) is not None}


def require_normalization(ensemble: RewardEnsemble) -> RewardEnsemble:
    """`ensemble`, refused (naming `--ensemble`) when it has no stored z-scores: every reward here is normalised."""
    if ensemble.normalizer is None:
        raise ConfigError("--ensemble: the reward ensemble has no normalisation statistics (preforch build-ensemble "
                          "fits and stores them)")
    return ensemble


class ObjectiveReward:
    """One objective's normalised reward r~_k(x, y) as a TRL reward function, None where it does not apply: the
    per-objective rewards that `--aggregation normalize-then-sum` normalises within each group. The K of them share
    one ensemble, whose cache scores each completion once."""

    def __init__(self, ensemble: RewardEnsemble, objective: str):
        self.ensemble = require_normalization(ensemble)
        self.column = ensemble.objectives.index(objective)
        self.__name__ = objective  # TRL logs rewards/<objective>/mean

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float | None]:
        scores = self.ensemble.score([prompt_messages(p) for p in prompts], [completion_text(c) for c in completions],
                                     columns=rule_columns(columns))
        return scores[:, self.column].tolist()


class CombinedReward:
    """R(x, y) = sum_i w_i(x) r~_i(x, y) (paper Eq. 9) over the objectives that apply to (x, y), their weights
    renormalised to 1; r~ normalised with the ensemble's stored statistics (never per batch). Logs per call each
    objective's mean raw and normalised reward and mean weight over the completions it applies to."""

    __name__ = "combined_reward"

    def __init__(self, ensemble: RewardEnsemble):
        self.ensemble = require_normalization(ensemble)

    def __call__(self, prompts: Sequence, completions: Sequence, weights: Sequence[Sequence[float]] | None = None,
                 log_metric: Callable[[str, float], None] | None = None, **columns) -> list[float]:
        if weights is None:
            raise ValueError("the dataset needs a 'weights' column (one weight vector per prompt)")
        msgs = [prompt_messages(p) for p in prompts]
        raw = self.ensemble.score_raw(msgs, [completion_text(c) for c in completions], columns=rule_columns(columns))
        normalized = self.ensemble.normalize(raw)  # [B, K]
        w = check_simplex(torch.tensor(weights, dtype=torch.float32), self.ensemble.objectives, "weights column")
        try:
            total = combined_reward(normalized, w)
        except DataError as e:  # name the prompt: TRL's batch index means nothing to the user
            i = int((~normalized.applies.any(-1)).nonzero()[0])
            raise DataError(f"{e}, the prompt {msgs[i][-1]['content'][:80]!r} (objectives: "
                            f"{list(self.ensemble.objectives)})") from None
        if log_metric is not None:
            self.log(log_metric, raw, normalized, w, total)
        return total.tolist()

    def log(self, log_metric: Callable[[str, float], None], raw: Scores, normalized: Scores, w: torch.Tensor,
            total: torch.Tensor) -> None:
        """Each objective's means over the completions it applies to (none: not logged), and the combined mean."""
        named = {"raw": raw.means()[0], "normalized": normalized.means()[0],
                 "weight": Scores(w.expand(raw.shape), raw.applies).means()[0]}
        for i, objective in enumerate(self.ensemble.objectives):
            for metric, means in named.items():
                if means[i] is not None:
                    log_metric(f"objectives/{objective}/{metric}", means[i])
        log_metric("objectives/combined", total.mean().item())
