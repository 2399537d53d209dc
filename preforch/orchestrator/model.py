"""The Preference Orchestrator f_phi(x) = softmax(head(pool(encoder(x)))) (paper Eq. 8).

Any Hugging Face encoder works. Predictions depend on the prompt only, so `predict` caches them per
prompt. `predict` applies the calibrated temperature (`softmax(logits / temperature)`, see
calibration.py), so every consumer (generate, evaluate, RL, WiC) gets the same weights. Saved folders hold
`encoder/`, `head.safetensors` and `orchestrator_config.json` (objectives, tau, temperature, pooling,
max_length and metadata such as the mean training target).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from preforch.data.schema import Message, content_key
from preforch.errors import ConfigError
from preforch.lru import LRUCache
from preforch.modeling import PooledHeadModel
from preforch.models import autocast, fast_bf16
from preforch.orchestrator.calibration import tempered_weights
from preforch.rewards.formatting import encode_prompts


class PreferenceOrchestrator(PooledHeadModel):
    CONFIG_FILE = "orchestrator_config.json"

    def __init__(self, encoder: nn.Module, tokenizer, objectives: Sequence[str], tau: float = 1.0,
                 pooling: str = "mean", max_length: int = 64, temperature: float = 1.0):
        if len(objectives) < 2:
            raise ConfigError(f"an orchestrator needs at least 2 objectives, got {list(objectives)}")
        super().__init__(encoder, tokenizer, len(objectives), pooling)
        self.objectives, self.tau, self.max_length = tuple(objectives), float(tau), max_length
        self.temperature = float(temperature)
        self.metadata: dict = {}  # saved with the config, e.g. the mean training target
        self._cache = LRUCache()  # prompt key -> weights [K] (unbounded unless `bound_cache`)
        self._features = LRUCache()  # prompt key -> pooled features [H] of the current encoder

    @classmethod
    def from_encoder(cls, name_or_path: str, objectives: Sequence[str], tau: float = 1.0, pooling: str = "mean",
                     max_length: int = 64, trust_remote_code: bool = False) -> "PreferenceOrchestrator":
        """A new orchestrator on a pretrained encoder (hub id, path, or 'minilm'); the head starts at zero,
        i.e. uniform weights."""
        model = cls(*cls.load_encoder(name_or_path, trust_remote_code), objectives, tau, pooling, max_length)
        nn.init.zeros_(model.head.weight)
        nn.init.zeros_(model.head.bias)
        return model

    def sibling(self) -> "PreferenceOrchestrator":
        """A new zero-initialised head on this same encoder, sharing its feature cache: several heads (e.g.
        one per training objective) on one frozen encoder encode each prompt once."""
        other = type(self)(self.encoder, self.tokenizer, self.objectives, self.tau, self.pooling, self.max_length)
        other._features = self._features
        nn.init.zeros_(other.head.weight)
        nn.init.zeros_(other.head.bias)
        return other.to(self.device)

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    def encode(self, prompts: Sequence[Sequence[Message]]) -> torch.Tensor:
        """Pooled prompt features [B, H] (gradients flow if the encoder is trainable)."""
        return self.features(encode_prompts(self.tokenizer, prompts, self.max_length).to(self.device))

    def forward(self, prompts: Sequence[Sequence[Message]]) -> torch.Tensor:
        """Logits [B, K]; softmax gives the weights."""
        return self.head(self.encode(prompts))

    @torch.no_grad()
    def embed(self, prompts: Sequence[Sequence[Message]], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """Pooled features [N, H] in eval mode, length-sorted batches; each distinct prompt is encoded once and
        cached until the encoder changes (`clear_cache(features=True)`)."""
        from tqdm.auto import tqdm

        keys = [content_key(p) for p in prompts]
        found = self._features.found(keys)
        todo = list({k: p for k, p in zip(keys, prompts) if k not in found}.items())
        todo.sort(key=lambda kp: sum(len(m["content"]) for m in kp[1]))
        was_training = self.training
        self.eval()
        for s in tqdm(range(0, len(todo), batch_size), desc="encoding prompts", disable=not progress or not todo):
            chunk = todo[s:s + batch_size]
            with autocast(self.device, fast_bf16(self.device)):
                feats = self.encode([p for _, p in chunk]).float().cpu()
            for (k, _), f in zip(chunk, feats):
                found[k] = self._features[k] = f.clone()  # its own storage: evicting it frees it
        self.train(was_training)
        if not keys:
            return torch.empty(0, self.encoder.config.hidden_size)
        return torch.stack([found[k] for k in keys])  # a bounded cache may have dropped some of this call's already

    @torch.no_grad()
    def logits(self, prompts: Sequence[Sequence[Message]], batch_size: int = 64) -> torch.Tensor:
        """Head outputs [B, K] before the temperature and softmax (not cached)."""
        return self.head(self.embed(prompts, batch_size).to(self.device)).float().cpu()

    def set_temperature(self, temperature: float) -> None:
        """Use `softmax(logits / temperature)` from now on (drops cached predictions)."""
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.clear_cache()

    @torch.no_grad()
    def predict(self, prompts: Sequence[Sequence[Message]], batch_size: int = 64) -> torch.Tensor:
        """Preference weights [B, K] on the simplex, at the calibrated temperature; each distinct prompt is
        encoded once and cached."""
        keys = [content_key(p) for p in prompts]
        found = self._cache.found(keys)
        todo = {k: p for k, p in zip(keys, prompts) if k not in found}
        if todo:
            weights = tempered_weights(self.logits(list(todo.values()), batch_size), self.temperature)
            for k, w in zip(todo, weights):
                found[k] = self._cache[k] = w.clone()
        if not keys:
            return torch.empty(0, self.num_objectives)
        return torch.stack([found[k] for k in keys])

    @property
    def cached_prompts(self) -> int:
        """Distinct prompts whose weights or features are cached (a server bounds this; training keeps them all)."""
        return max(len(self._cache), len(self._features))

    def bound_cache(self, max_prompts: int | None) -> None:
        """Keep the weights and features of at most `max_prompts` prompts, the least recently used dropped first
        (None: all, the default): a long-lived server sees new prompts forever."""
        self._cache.resize(max_prompts)
        self._features.resize(max_prompts)

    def clear_cache(self, features: bool = False) -> None:
        """Drop cached predictions (call after changing the head), and the cached features too when
        `features` (after changing the encoder)."""
        self._cache.clear()
        if features:
            self._features.clear()

    def config_dict(self) -> dict:
        return {"objectives": list(self.objectives), "tau": self.tau, "temperature": self.temperature,
                "max_length": self.max_length,
                "hidden_size": self.encoder.config.hidden_size, "metadata": self.metadata}

    def hf_config(self):
        from preforch.modeling_preforch import hf_config

        return hf_config("orchestrator", self.objectives, self.encoder.config, self.pooling, self.max_length,
                         tau=self.tau, weight_temperature=self.temperature)

    @classmethod
    def _from_parts(cls, encoder, tokenizer, cfg: dict):
        model = cls(encoder, tokenizer, cfg["objectives"], cfg["tau"], cfg.get("pooling", "mean"), cfg.get("max_length", 64),
                    cfg.get("temperature", 1.0))
        model.metadata = cfg.get("metadata", {})
        return model
