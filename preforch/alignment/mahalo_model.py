"""MAHALO's multi-head policy (pearls-lab/multiobj-align): one causal-LM trunk, K output heads, one per objective.

Each head is a full copy of the starting model's output matrix W_0 [V, H] (plus small noise); the trunk and the
input embeddings are shared. A model that ties its input and output embeddings (SmolLM2) is untied by this: the
heads are copies, the input embeddings stay where they were. At inference the heads mix by user weights,
`z_t = sum_k w_k W_k h_t` (one merged head per w).

FOLDER: the trunk as a Hugging Face causal-LM folder (its own output layer is the reference head W_0, unused by
the policy), its tokenizer, heads.safetensors ({"heads": [K, V, H]}) and mahalo.json ({"objectives": [...],
"base_model": ..., ...}).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from preforch.errors import ConfigError, WeightsError

MAHALO_FILE = "mahalo.json"
HEADS_FILE = "heads.safetensors"


def init_heads(output_matrix: torch.Tensor, num_heads: int, noise_std: float, seed: int = 0) -> torch.Tensor:
    """K copies of the starting output matrix [V, H] plus N(0, noise_std^2) noise -> [K, V, H] (MAHALO's init)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((num_heads, *output_matrix.shape), generator=g) * noise_std
    return output_matrix.detach().float().cpu()[None] + noise


def mixed_logits(hidden: torch.Tensor, heads: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """z = sum_k w_k W_k h (MAHALO's inference mixing): hidden [B, T, H], heads [K, V, H], weights [B, K] -> [B, T, V].

    softmax(z) is the normalised product prod_k pi_k^{w_k} of the heads' distributions when w sums to 1, since
    each head's log-softmax differs from its logits by a constant. Rows sharing one w use one merged head.
    """
    weights = weights.to(heads.dtype)
    if bool((weights == weights[:1]).all()):
        return hidden @ torch.einsum("k,kvh->vh", weights[0], heads).T
    return torch.einsum("kbtv,bk->btv", torch.einsum("bth,kvh->kbtv", hidden, heads), weights)


def check_head_weights(weights: torch.Tensor, objectives: Sequence[str]) -> torch.Tensor:
    """weights [B, K] as float; `WeightsError` naming the objectives when K is not the number of heads."""
    if weights.dim() != 2 or weights.shape[1] != len(objectives):
        raise WeightsError(f"mahalo head weights: expected [B, {len(objectives)}] over heads {list(objectives)}, "
                           f"got shape {tuple(weights.shape)}")
    return weights.float()


class MultiHeadLM(nn.Module):
    """The trunk of `lm` (any Hugging Face causal LM, or a peft model of one) with K heads [K, V, H]."""

    def __init__(self, lm, heads: torch.Tensor, objectives: Sequence[str], record: dict | None = None):
        super().__init__()
        if heads.shape[0] != len(objectives):
            raise ConfigError(f"mahalo: {heads.shape[0]} heads for objectives {list(objectives)}")
        self.lm, self.objectives, self.record = lm, tuple(objectives), dict(record or {})
        self.heads = nn.Parameter(heads.to(lm.device, lm.dtype))

    @classmethod
    def from_base(cls, lm, objectives: Sequence[str], noise_std: float = 1e-3, seed: int = 0) -> MultiHeadLM:
        """MAHALO's start: every head is the base model's output matrix plus noise (std `noise_std`)."""
        heads = init_heads(lm.get_output_embeddings().weight, len(objectives), noise_std, seed)
        return cls(lm, heads, objectives)

    @property
    def device(self) -> torch.device:
        return self.heads.device

    @property
    def config(self):
        return self.lm.config

    @property
    def generation_config(self):
        return self.lm.generation_config

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        """The trunk's last hidden states [B, T, H] (final norm applied) and its output (KV cache and all)."""
        out = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return out.last_hidden_state, out

    def head_logits(self, hidden: torch.Tensor, head: int) -> torch.Tensor:
        """Logits [B, T, V] of head `head` alone."""
        return hidden @ self.heads[head].T

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                weights: torch.Tensor, logits_to_keep: int = 0, **kwargs):
        """Causal-LM output (`.logits` [B, T', V], `.past_key_values`) of the heads mixed by weights [B, K]."""
        hidden, out = self.hidden(input_ids, attention_mask, **kwargs)
        hidden = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        logits = mixed_logits(hidden, self.heads, check_head_weights(weights, self.objectives).to(hidden.device))
        return SimpleNamespace(logits=logits, past_key_values=getattr(out, "past_key_values", None))

    def save_pretrained(self, folder: str | Path, tokenizer=None, **record) -> None:
        """Write FOLDER (see the module doc); a peft trunk is saved merged. Not atomic: callers use atomic_directory."""
        from safetensors.torch import save_file

        folder = Path(folder)
        lm = self.lm.merge_and_unload() if hasattr(self.lm, "merge_and_unload") else self.lm
        lm.save_pretrained(folder, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        save_file({"heads": self.heads.detach().contiguous().cpu()}, str(folder / HEADS_FILE))
        (folder / MAHALO_FILE).write_text(json.dumps({**self.record, **record, "objectives": list(self.objectives)},
                                                     indent=2))

    @classmethod
    def from_pretrained(cls, folder: str | Path, trust_remote_code: bool = False, dtype=None):
        """(model, tokenizer) from a folder `save_pretrained` wrote; `ConfigError` naming the file at fault."""
        from safetensors import safe_open

        from preforch.models import load_policy

        folder = Path(folder)
        file = folder / MAHALO_FILE
        if not file.is_file() or not (folder / HEADS_FILE).is_file():
            raise ConfigError(f"{folder}: no {MAHALO_FILE} / {HEADS_FILE}: not a MAHALO policy "
                              "(preforch train-mahalo makes one)")
        try:
            record = json.loads(file.read_text())
            objectives = record["objectives"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConfigError(f"{file}: malformed ({type(e).__name__}: {e}); field 'objectives' names the heads") from None
        lm, tok = load_policy(str(folder), dtype=dtype, trust_remote_code=trust_remote_code)
        with safe_open(str(folder / HEADS_FILE), framework="pt") as f:
            heads = f.get_tensor("heads")
        if heads.dim() != 3 or heads.shape[1:] != lm.get_output_embeddings().weight.shape:
            raise ConfigError(f"{folder / HEADS_FILE}: heads of shape {tuple(heads.shape)} do not fit the trunk's "
                              f"output matrix {tuple(lm.get_output_embeddings().weight.shape)}")
        return cls(lm, heads, objectives, record).eval(), tok


class WeightedView:
    """The model under fixed per-row weights [B, K] as a plain causal-LM callable (for `mixed_decode` and guided
    decoding): one trunk pass per step, one mixed head."""

    def __init__(self, model: MultiHeadLM, weights: torch.Tensor):
        self.model, self.weights = model, weights

    def __call__(self, **inputs):
        return self.model(weights=self.weights, **inputs)
