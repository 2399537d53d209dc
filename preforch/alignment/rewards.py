"""The reward of Pro-MORLHF / MORLHF as a TRL reward function (GRPOTrainer, RLOOTrainer).

TRL hands every extra dataset column to reward functions as a keyword argument, one value per
completion, so each prompt's weight vector travels in a `weights` column: computed once per prompt
(orchestrator, fixed or one-hot), never per step.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from preforch.data.weights import check_simplex
from preforch.generation.combined_reward import combined_reward
from preforch.rewards.ensemble import RewardEnsemble


def completion_text(completion) -> str:
    """TRL passes a completion as a string (standard format) or a list of messages (conversational)."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def prompt_messages(prompt) -> tuple[dict, ...]:
    return ({"role": "user", "content": prompt},) if isinstance(prompt, str) else tuple(prompt)


class CombinedReward:
    """R(x, y) = sum_i w_i(x) r~_i(x, y) (paper Eq. 9), r~ normalised with the ensemble's stored statistics
    (never per batch). Logs each objective's mean raw and normalised reward and mean weight per call."""

    __name__ = "combined_reward"

    def __init__(self, ensemble: RewardEnsemble):
        if ensemble.normalizer is None:
            raise ValueError("the reward ensemble has no normalisation statistics (build it with preforch build-ensemble)")
        self.ensemble = ensemble

    def __call__(self, prompts: Sequence, completions: Sequence, weights: Sequence[Sequence[float]] | None = None,
                 log_metric: Callable[[str, float], None] | None = None, **_) -> list[float]:
        if weights is None:
            raise ValueError("the dataset needs a 'weights' column (one weight vector per prompt)")
        msgs = [prompt_messages(p) for p in prompts]
        raw = self.ensemble.score_raw(msgs, [completion_text(c) for c in completions])  # [B, K]
        normalized = self.ensemble.normalize(raw)
        w = check_simplex(torch.tensor(weights, dtype=torch.float32), self.ensemble.objectives, "weights column")
        total = combined_reward(normalized, w)
        if log_metric is not None:
            for i, objective in enumerate(self.ensemble.objectives):
                log_metric(f"objectives/{objective}/raw", raw[:, i].mean().item())
                log_metric(f"objectives/{objective}/normalized", normalized[:, i].mean().item())
                log_metric(f"objectives/{objective}/weight", w[:, i].mean().item())
            log_metric("objectives/combined", total.mean().item())
        return total.tolist()
