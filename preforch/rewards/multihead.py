"""Multi-head reward model: one encoder, one linear head per objective, mean-pooled features.

One forward pass scores all K objectives. Mean pooling (not BERT's CLS pooler) because sentence
encoders such as MiniLM are trained for it; with the CLS pooler the Bradley-Terry loss stayed at
log 2 for the first 60+ steps on HH-RLHF, with mean pooling it falls from the start. Pooling over the
reply's tokens only ('response', the default where the tokenizer marks the reply) raised held-out accuracy
further (docs/design.md).
"""

from __future__ import annotations

from typing import Sequence

from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from preforch.modeling import PooledHeadModel, auto_pooling

REWARD_CONFIG = "reward_config.json"


class MultiHeadRewardModel(PooledHeadModel):
    CONFIG_FILE = REWARD_CONFIG

    def __init__(self, encoder, tokenizer, objectives: Sequence[str], pooling: str = "mean",
                 max_length: int = 128, prompt_max_tokens: int = 64, normalization: dict | None = None):
        super().__init__(encoder, tokenizer, len(objectives), pooling)
        self.objectives = tuple(objectives)
        # The input format it is trained with; saved so scoring later uses the same.
        self.max_length, self.prompt_max_tokens = max_length, prompt_max_tokens
        # z-score statistics of its raw scores on training replies, for users outside preforch (an ensemble fits its own)
        self.normalization = normalization

    @classmethod
    def from_encoder(cls, name_or_path: str, objectives: Sequence[str], pooling: str = "auto", max_length: int = 128,
                     prompt_max_tokens: int = 64, trust_remote_code: bool = False) -> "MultiHeadRewardModel":
        """A new model with small random heads. pooling 'auto' is 'response' where the tokenizer marks the reply
        as the second segment of a text pair (BERT-style encoders), else 'mean'."""
        encoder, tok = cls.load_encoder(name_or_path, trust_remote_code)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if pooling == "auto":
            pooling = auto_pooling(tok)
        model = cls(encoder, tok, objectives, pooling, max_length, prompt_max_tokens)
        nn.init.normal_(model.head.weight, std=0.02)
        nn.init.zeros_(model.head.bias)
        return model

    def forward(self, **enc) -> SequenceClassifierOutput:
        """Same output type as a Hugging Face sequence classifier: logits [B, K], one column per objective."""
        return SequenceClassifierOutput(logits=self.head(self.features(enc)))

    def config_dict(self) -> dict:
        return {"objectives": list(self.objectives), "max_length": self.max_length,
                "prompt_max_tokens": self.prompt_max_tokens, "normalization": self.normalization}

    def hf_config(self):
        from preforch.modeling_preforch import hf_config

        return hf_config("reward", self.objectives, self.encoder.config, self.pooling, self.max_length,
                         self.prompt_max_tokens, normalization=self.normalization)

    @classmethod
    def _from_parts(cls, encoder, tokenizer, cfg: dict):
        return cls(encoder, tokenizer, cfg["objectives"], cfg.get("pooling", "mean"), cfg.get("max_length", 128),
                   cfg.get("prompt_max_tokens", 64), cfg.get("normalization"))
