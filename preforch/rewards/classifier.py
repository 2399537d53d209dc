"""MOSLIM's classification reward model: one encoder, one classification head per objective.

Head h sorts a (prompt, response) into L_h ordinal intensity levels (counts may differ between heads); the
heads are one linear layer of sum L_h outputs, split per head. `forward` returns each head's expected level
[B, H], so the folder also works as a plain reward source (`HFRewardModel`) with one score per objective;
`level_logits` gives the raw class logits that MOSLIM's mapping reads (`ClassifierReward.probabilities`, in
`classifier_reward.py`, so that this model sits below `sources.py`, which loads it by its marker file). The
reference-set statistics of the mapping (`LevelStats`) are fitted once after training and saved in the config.
Loaded with transformers' `AutoModelForSequenceClassification` (modeling_preforch.py), a folder's logits are
`level_logits`, not the expected levels: users outside preforch split them by `config.num_levels`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from preforch.errors import ConfigError
from preforch.modeling import PooledHeadModel
from preforch.rewards.levels import LevelStats, expected_level, head_probabilities

CLASSIFIER_CONFIG = "classifier_config.json"


class ClassifierRewardModel(PooledHeadModel):
    CONFIG_FILE = CLASSIFIER_CONFIG

    def __init__(self, encoder, tokenizer, objectives: Sequence[str], num_levels: Sequence[int], pooling: str = "mean",
                 max_length: int = 128, prompt_max_tokens: int = 64, stats: LevelStats | None = None):
        if len(objectives) != len(num_levels) or min(num_levels, default=0) < 2:
            raise ConfigError(f"levels: need one count >= 2 per objective {list(objectives)}, got {list(num_levels)}")
        super().__init__(encoder, tokenizer, sum(num_levels), pooling)
        self.objectives, self.num_levels = tuple(objectives), tuple(int(n) for n in num_levels)
        self.max_length, self.prompt_max_tokens, self.stats = max_length, prompt_max_tokens, stats

    @classmethod
    def from_encoder(cls, name_or_path: str, objectives: Sequence[str], num_levels: Sequence[int], pooling: str = "auto",
                     max_length: int = 128, prompt_max_tokens: int = 64,
                     trust_remote_code: bool = False) -> "ClassifierRewardModel":
        """A new model with small random heads; pooling 'auto' as `MultiHeadRewardModel.from_encoder`."""
        from preforch.rewards.multihead import MultiHeadRewardModel

        base = MultiHeadRewardModel.from_encoder(name_or_path, objectives, pooling, max_length, prompt_max_tokens,
                                                 trust_remote_code)
        model = cls(base.encoder, base.tokenizer, objectives, num_levels, base.pooling, max_length, prompt_max_tokens)
        nn.init.normal_(model.head.weight, std=0.02)
        nn.init.zeros_(model.head.bias)
        return model

    def level_logits(self, enc) -> torch.Tensor:
        """Class logits of every head, concatenated: [B, sum L_h]."""
        return self.head(self.features(enc))

    def forward(self, return_level_logits: bool = False, **enc) -> SequenceClassifierOutput:
        """Expected level of each head [B, H], as a sequence classifier's logits (one score per objective); with
        `return_level_logits` the class logits [B, sum L_h] (training calls this, so DDP sees the forward)."""
        logits = self.level_logits(enc)
        return SequenceClassifierOutput(
            logits=logits if return_level_logits else expected_level(head_probabilities(logits, self.num_levels)))

    def config_dict(self) -> dict:
        return {"objectives": list(self.objectives), "num_levels": list(self.num_levels), "max_length": self.max_length,
                "prompt_max_tokens": self.prompt_max_tokens, "level_stats": self.stats.to_dict() if self.stats else None}

    def hf_config(self):
        """Kind 'classifier': one label "<objective>/<level>" per class, the logits' split in `num_levels`."""
        from preforch.modeling_preforch import hf_config

        classes = [f"{o}/{level}" for o, n in zip(self.objectives, self.num_levels) for level in range(n)]
        return hf_config("classifier", classes, self.encoder.config, self.pooling, self.max_length,
                         self.prompt_max_tokens, num_levels=list(self.num_levels),
                         level_stats=self.stats.to_dict() if self.stats else None)

    @classmethod
    def _from_parts(cls, encoder, tokenizer, cfg: dict):
        stats = LevelStats.from_dict(cfg["level_stats"]) if cfg.get("level_stats") else None
        return cls(encoder, tokenizer, cfg["objectives"], cfg["num_levels"], cfg.get("pooling", "mean"),
                   cfg.get("max_length", 128), cfg.get("prompt_max_tokens", 64), stats)
