"""MAHALO's multi-head policy (pearls-lab/multiobj-align): one causal-LM trunk, K output heads, one per objective.

Each head is a full copy of the starting model's output matrix W_0 [V, H] (plus small noise); the trunk and the
input embeddings are shared. A model that ties its input and output embeddings (SmolLM2) is untied by this: the
heads are copies, the input embeddings stay where they were. At inference the heads mix by user weights,
`z_t = sum_k w_k W_k h_t` (one merged head per w).

FOLDER: the trunk as a Hugging Face causal-LM folder (its own output layer is the reference head W_0, unused by
the policy), its tokenizer, heads.safetensors ({"heads": [K, V, H]}, plus "adapter_down" [K, r, H] and "adapter_up"
[K, H, r] with head adapters) and mahalo.json ({"objectives": [...], "base_model": ..., ...}).

Head adapters (ours, off by default): a head's linear map W_k h can only reweight what the trunk's last hidden state
already separates. With `adapter_rank` r > 0 each head first passes h through its own bottleneck,
`a_k(h) = h + U_k gelu(D_k h)` (U_k starts at zero, so a new model still equals the base), and mixing becomes
`z_t = sum_k w_k W_k a_k(h_t)`: the trunk and its KV cache stay shared, each head gets a little nonlinear capacity.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
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


def adapted(hidden: torch.Tensor, down: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """A head's bottleneck adapter h + U gelu(D h): hidden [..., H], down D [r, H], up U [H, r] -> [..., H]."""
    return hidden + F.gelu(hidden @ down.T) @ up.T


def init_adapters(num_heads: int, hidden_size: int, rank: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(down [K, r, H] ~ N(0, 1/H), up [K, H, r] = 0): every adapter starts as the identity, with a gradient."""
    g = torch.Generator().manual_seed(seed + 1)
    down = torch.randn((num_heads, rank, hidden_size), generator=g) / hidden_size ** 0.5
    return down, torch.zeros(num_heads, hidden_size, rank)


def check_head_weights(weights: torch.Tensor, objectives: Sequence[str]) -> torch.Tensor:
    """weights [B, K] as float; `WeightsError` naming the objectives when K is not the number of heads."""
    if weights.dim() != 2 or weights.shape[1] != len(objectives):
        raise WeightsError(f"mahalo head weights: expected [B, {len(objectives)}] over heads {list(objectives)}, "
                           f"got shape {tuple(weights.shape)}")
    return weights.float()


class MultiHeadLM(nn.Module):
    """The trunk of `lm` (any Hugging Face causal LM, or a peft model of one) with K heads [K, V, H], and optionally
    a bottleneck adapter per head (`adapters` = (down [K, r, H], up [K, H, r]))."""

    def __init__(self, lm, heads: torch.Tensor, objectives: Sequence[str], record: dict | None = None,
                 adapters: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        if heads.shape[0] != len(objectives):
            raise ConfigError(f"mahalo: {heads.shape[0]} heads for objectives {list(objectives)}")
        self.lm, self.objectives, self.record = lm, tuple(objectives), dict(record or {})
        self.heads = nn.Parameter(heads.to(lm.device, lm.dtype))
        self.adapter_down = self.adapter_up = None
        if adapters is not None:
            self.adapter_down, self.adapter_up = (nn.Parameter(a.to(lm.device, lm.dtype)) for a in adapters)

    @classmethod
    def from_base(cls, lm, objectives: Sequence[str], noise_std: float = 1e-3, seed: int = 0,
                  adapter_rank: int = 0) -> MultiHeadLM:
        """MAHALO's start: every head is the base model's output matrix plus noise (std `noise_std`); with
        `adapter_rank` r > 0, each head also gets an identity-initialised bottleneck adapter of rank r."""
        output = lm.get_output_embeddings().weight
        heads = init_heads(output, len(objectives), noise_std, seed)
        adapters = init_adapters(len(objectives), output.shape[1], adapter_rank, seed) if adapter_rank else None
        return cls(lm, heads, objectives, adapters=adapters)

    def head_parameters(self) -> list[nn.Parameter]:
        """What belongs to the heads (trained at the heads' learning rate): the output matrices and any adapters."""
        return [p for p in (self.heads, self.adapter_down, self.adapter_up) if p is not None]

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
        """Logits [B, T, V] of head `head` alone (through its adapter, if any)."""
        if self.adapter_down is not None:
            hidden = adapted(hidden, self.adapter_down[head], self.adapter_up[head])
        return hidden @ self.heads[head].T

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                weights: torch.Tensor, logits_to_keep: int = 0, **kwargs):
        """Causal-LM output (`.logits` [B, T', V], `.past_key_values`) of the heads mixed by weights [B, K]."""
        hidden, out = self.hidden(input_ids, attention_mask, **kwargs)
        hidden = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        weights = check_head_weights(weights, self.objectives).to(hidden.device)
        if self.adapter_down is None:
            logits = mixed_logits(hidden, self.heads, weights)
        else:  # each head reads its own adapted hidden state: no merged head, K projections
            logits = torch.einsum("kbtv,bk->btv", torch.stack([self.head_logits(hidden, k) for k in range(len(self.objectives))]),
                                  weights.to(hidden.dtype))
        return SimpleNamespace(logits=logits, past_key_values=getattr(out, "past_key_values", None))

    def save_pretrained(self, folder: str | Path, tokenizer=None, **record) -> None:
        """Write FOLDER (see the module doc); a peft trunk is saved merged. Not atomic: callers use atomic_directory."""
        from safetensors.torch import save_file

        folder = Path(folder)
        lm = self.lm.merge_and_unload() if hasattr(self.lm, "merge_and_unload") else self.lm
        lm.save_pretrained(folder, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        save_file({name: p.detach().contiguous().cpu() for name, p in
                   (("heads", self.heads), ("adapter_down", self.adapter_down), ("adapter_up", self.adapter_up))
                   if p is not None}, str(folder / HEADS_FILE))
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
            adapters = tuple(f.get_tensor(n) for n in ("adapter_down", "adapter_up")) if "adapter_up" in f.keys() else None
        if heads.dim() != 3 or heads.shape[1:] != lm.get_output_embeddings().weight.shape:
            raise ConfigError(f"{folder / HEADS_FILE}: heads of shape {tuple(heads.shape)} do not fit the trunk's "
                              f"output matrix {tuple(lm.get_output_embeddings().weight.shape)}")
        if adapters and not (adapters[0].dim() == 3 and adapters[0].shape[::2] == (len(heads), heads.shape[2])
                             and adapters[1].shape == adapters[0].transpose(1, 2).shape):
            raise ConfigError(f"{folder / HEADS_FILE}: adapters of shapes {[tuple(a.shape) for a in adapters]} do not "
                              f"fit {len(heads)} heads of width {heads.shape[2]} (expected [K, r, H] and [K, H, r])")
        return cls(lm, heads, objectives, record, adapters).eval(), tok


class WeightedView:
    """The model under fixed per-row weights [B, K] as a plain causal-LM callable (for `mixed_decode` and guided
    decoding): one trunk pass per step, one mixed head."""

    def __init__(self, model: MultiHeadLM, weights: torch.Tensor):
        self.model, self.weights = model, weights

    def __call__(self, **inputs):
        return self.model(weights=self.weights, **inputs)
