"""The Preference Orchestrator f_phi(x) = softmax(head(pool(encoder(x)))) (paper Eq. 8).

Any Hugging Face encoder works. Predictions depend on the prompt only, so `predict` caches them per
prompt. Saved folders hold `encoder/` (weights + tokenizer, safetensors), `head.safetensors` and
`orchestrator_config.json` (objectives, tau, pooling, max_length).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from preforch.data.schema import Message
from preforch.errors import ConfigError
from preforch.io import atomic_directory, atomic_write_json
from preforch.models import autocast, fast_bf16
from preforch.rewards.formatting import encode_prompts

CONFIG_FILE = "orchestrator_config.json"


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """Token states [B, T, H] and attention mask [B, T] -> one vector per prompt [B, H]."""
    if how == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def _prompt_key(prompt: Sequence[Message]) -> str:
    return hashlib.sha1(json.dumps(list(prompt), ensure_ascii=False).encode()).hexdigest()


class PreferenceOrchestrator(nn.Module):
    def __init__(self, encoder: nn.Module, tokenizer, objectives: Sequence[str], tau: float = 1.0,
                 pooling: str = "mean", max_length: int = 64):
        super().__init__()
        if len(objectives) < 2:
            raise ConfigError(f"an orchestrator needs at least 2 objectives, got {list(objectives)}")
        self.encoder, self.tokenizer = encoder, tokenizer
        self.objectives, self.tau, self.pooling, self.max_length = tuple(objectives), float(tau), pooling, max_length
        self.head = nn.Linear(encoder.config.hidden_size, len(objectives))
        self.metadata: dict = {}  # saved with the config, e.g. the mean training target
        self._cache: dict[str, torch.Tensor] = {}

    @classmethod
    def from_encoder(cls, name_or_path: str, objectives: Sequence[str], tau: float = 1.0, pooling: str = "mean",
                     max_length: int = 64, trust_remote_code: bool = False) -> "PreferenceOrchestrator":
        """A new orchestrator on a pretrained encoder (hub id, path, or 'minilm'); the head starts at zero,
        i.e. uniform weights."""
        from transformers import AutoModel, AutoTokenizer

        from preforch.models import resolve

        path = resolve(name_or_path)
        encoder = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = cls(encoder, tok, objectives, tau, pooling, max_length)
        nn.init.zeros_(model.head.weight)
        nn.init.zeros_(model.head.bias)
        return model

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def encode(self, prompts: Sequence[Sequence[Message]]) -> torch.Tensor:
        """Pooled prompt features [B, H] (gradients flow if the encoder is trainable)."""
        enc = encode_prompts(self.tokenizer, prompts, self.max_length).to(self.device)
        out = self.encoder(**enc)
        return pool(out.last_hidden_state, enc["attention_mask"], self.pooling)

    def forward(self, prompts: Sequence[Sequence[Message]]) -> torch.Tensor:
        """Logits [B, K]; softmax gives the weights."""
        return self.head(self.encode(prompts))

    @torch.no_grad()
    def embed(self, prompts: Sequence[Sequence[Message]], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """Pooled features [N, H] in eval mode, length-sorted batches (for frozen-encoder training)."""
        from tqdm.auto import tqdm

        was_training = self.training
        self.eval()
        out = torch.empty(len(prompts), self.encoder.config.hidden_size)
        order = sorted(range(len(prompts)), key=lambda i: sum(len(m["content"]) for m in prompts[i]))
        for s in tqdm(range(0, len(order), batch_size), desc="encoding prompts", disable=not progress):
            idx = order[s:s + batch_size]
            with autocast(self.device, fast_bf16(self.device)):
                out[idx] = self.encode([prompts[i] for i in idx]).float().cpu()
        self.train(was_training)
        return out

    @torch.no_grad()
    def predict(self, prompts: Sequence[Sequence[Message]], batch_size: int = 64) -> torch.Tensor:
        """Preference weights [B, K] on the simplex; each distinct prompt is encoded once and cached."""
        keys = [_prompt_key(p) for p in prompts]
        todo = {k: p for k, p in zip(keys, prompts) if k not in self._cache}
        if todo:
            feats = self.embed(list(todo.values()), batch_size)
            weights = torch.softmax(self.head(feats.to(self.device)).float(), -1).cpu()
            self._cache.update(zip(todo, weights))
        if not keys:
            return torch.empty(0, self.num_objectives)
        return torch.stack([self._cache[k] for k in keys])

    def clear_cache(self) -> None:
        """Drop cached predictions (call after changing parameters)."""
        self._cache.clear()

    def save_pretrained(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        with atomic_directory(path) as tmp:
            self.encoder.save_pretrained(tmp / "encoder", safe_serialization=True)
            self.tokenizer.save_pretrained(tmp / "encoder")
            save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, tmp / "head.safetensors")
            atomic_write_json(tmp / CONFIG_FILE, {
                "objectives": list(self.objectives), "tau": self.tau, "pooling": self.pooling,
                "max_length": self.max_length, "hidden_size": self.encoder.config.hidden_size,
                "metadata": self.metadata,
            })

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None) -> "PreferenceOrchestrator":
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        path = Path(path)
        cfg_file = path / CONFIG_FILE
        if not cfg_file.is_file():
            raise ConfigError(f"{path}: not an orchestrator folder (missing {CONFIG_FILE})")
        try:
            cfg = json.loads(cfg_file.read_text())
            objectives, tau = cfg["objectives"], cfg["tau"]
        except (json.JSONDecodeError, KeyError) as e:
            raise ConfigError(f"{cfg_file}: malformed orchestrator config ({e})") from None
        encoder = AutoModel.from_pretrained(path / "encoder")
        model = cls(encoder, AutoTokenizer.from_pretrained(path / "encoder"), objectives, tau,
                    cfg.get("pooling", "mean"), cfg.get("max_length", 64))
        model.head.load_state_dict(load_file(path / "head.safetensors"))
        model.metadata = cfg.get("metadata", {})
        return model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
