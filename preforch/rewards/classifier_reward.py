"""A saved MOSLIM classification reward model (`classifier.py`) as a reward source (`sources.HFRewardModel`).

Kept apart from the model so the import order is one way: classifier <- sources <- classifier_reward.
"""

from __future__ import annotations

from typing import Sequence

import torch

from preforch.data.schema import Message
from preforch.errors import ConfigError
from preforch.rewards.classifier import CLASSIFIER_CONFIG, ClassifierRewardModel
from preforch.rewards.levels import LevelStats, head_probabilities
from preforch.rewards.sources import HFRewardModel


class ClassifierReward(HFRewardModel):
    """A saved `ClassifierRewardModel` as a reward source: `score` gives expected levels [B, H] (what an ensemble
    reads), `probabilities` the per-level probabilities [B, H, L] MOSLIM's mapping reads."""

    def __init__(self, path: str, device: str | None = None, batch_size: int = 64):
        super().__init__(path, device=device, batch_size=batch_size)
        if not isinstance(self.model, ClassifierRewardModel):
            raise ConfigError(f"{path}: not a classification reward model (no {CLASSIFIER_CONFIG}; train one with "
                              "preforch train-rm --levels ...)")
        self.num_levels = self.model.num_levels

    @property
    def stats(self) -> LevelStats:
        if self.model.stats is None:
            raise ConfigError(f"{self.path}: no level statistics stored (train-rm --levels fits them after training)")
        return self.model.stats

    def probabilities(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str]) -> torch.Tensor:
        """Per-head level probabilities [B, H, max L_h] (padding levels 0)."""
        return head_probabilities(self.outputs(prompts, responses, self.model.level_logits), self.num_levels)
