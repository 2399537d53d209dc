"""Kind `mod`: Multi-Objective Decoding (Shi et al. 2024): the per-objective experts of a train-experts folder
decode together, their next-token log-probabilities mixed by each prompt's w (`mixed_decoding.py`). The LoRA
experts share one base model: each step runs it once per weighted expert, switching adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from tqdm.auto import tqdm

from preforch.errors import ConfigError
from preforch.generation.sampling import SamplingConfig, encode_prompts, reply_rows
from preforch.serving.decoding.mixed_decoding import DIVERGENCES, AdapterView, end_tokens, mixed_decode
from preforch.serving.policies.experts import ExpertsPolicy
from preforch.serving.policies.policy import Prompts, Replies


@dataclass(frozen=True)
class ModSettings:
    """policy: a train-experts folder; divergence: reverse-kl (sum_i w_i log pi_i of the next token) | forward-kl
    (-logsumexp_i(log w_i - log pi_i) of the whole prefix ending in it, as MOD accumulates it; `mixed_decoding.py`)."""

    policy: str = field(metadata={"path": True})
    divergence: str = "reverse-kl"

    def __post_init__(self):
        if self.divergence not in DIVERGENCES:
            raise ConfigError(f"divergence: expected one of {', '.join(DIVERGENCES)}, got {self.divergence!r}")


class ModPolicy(ExpertsPolicy):
    kind = "mod"
    Settings = ModSettings

    def candidates(self, prompts: Prompts, weightings: Sequence[torch.Tensor], sampling: SamplingConfig) -> Replies:
        """Rows of one batch may carry different w: the mixing is per row."""
        from transformers import set_seed

        model, tok = self.model_and_tokenizer()
        experts = [AdapterView(model, name) for name in self.experts.names]
        asked, weights, n = self.asked(prompts, weightings), torch.cat(weightings).to(model.device), sampling.num_candidates
        set_seed(sampling.seed)
        out: Replies = []
        for s in tqdm(range(0, len(asked), sampling.batch_size), desc="mixing experts", unit="batch"):
            enc = encode_prompts(tok, asked[s:s + sampling.batch_size], model.device)
            tokens = mixed_decode(experts, enc["input_ids"].repeat_interleave(n, 0), enc["attention_mask"].repeat_interleave(n, 0),
                                  weights[s:s + sampling.batch_size].repeat_interleave(n, 0),
                                  max_new_tokens=sampling.max_new_tokens, eos_ids=end_tokens(model, tok),
                                  pad_id=tok.pad_token_id, temperature=sampling.temperature, top_p=sampling.top_p,
                                  divergence=self.settings.divergence)
            out += reply_rows(tok.batch_decode(tokens, skip_special_tokens=True), n)
        return out
