"""Encoder + pooling + linear head: the shape shared by the multi-head reward model and the orchestrator.

A saved folder holds `encoder/` (Hugging Face weights + tokenizer, safetensors), `head.safetensors`
and a JSON config named by the subclass. Nothing is unpickled.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from preforch.errors import ConfigError
from preforch.io import atomic_directory, atomic_write_json, read_json


POOLINGS = ("mean", "cls", "response", "last")


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """Token states [B, T, H] and attention mask [B, T] -> one vector per sequence [B, H]: the mean over unmasked
    tokens, the first token ('cls'), or the last unmasked one ('last': under causal attention only it has read the
    whole input, as Hugging Face's decoder sequence classifiers use; either padding side)."""
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        last = mask.shape[1] - 1 - mask.flip(1).argmax(1)  # [B]
        return hidden[torch.arange(len(hidden), device=hidden.device), last]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def auto_pooling(tokenizer) -> str:
    """'response' where the tokenizer marks the reply as the second segment of a text pair (BERT-style
    encoders), else 'mean'. ('last' is not chosen automatically: SmolLM2-135M with it, one epoch on the HH pairs,
    did not beat MiniLM with 'response'; docs/results.md.)"""
    marks_reply = "token_type_ids" in tokenizer.model_input_names and not getattr(tokenizer, "chat_template", None)
    return "response" if marks_reply else "mean"


class PooledHeadModel(nn.Module):
    """`head(pool(encoder(x)))` with Hugging Face-style save/load. Subclasses set CONFIG_FILE and
    `config_dict()`/`_from_parts()`."""

    CONFIG_FILE = "config.json"

    def __init__(self, encoder: nn.Module, tokenizer, num_outputs: int, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling: expected one of {POOLINGS}, got {pooling!r}")
        self.encoder, self.tokenizer, self.pooling = encoder, tokenizer, pooling
        self.head = nn.Linear(encoder.config.hidden_size, num_outputs)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def features(self, enc) -> torch.Tensor:
        """Pooled features [B, H] of a tokenised batch. 'response' pooling averages the second segment of a
        (prompt, response) text pair only (token_type_ids 1), so the reply is not diluted by the prompt."""
        mask = enc["attention_mask"]
        if self.pooling == "response":
            if "token_type_ids" not in enc:
                raise ConfigError("pooling 'response' needs a tokenizer that marks the response segment "
                                  "(token_type_ids, as BERT-style encoders do); use pooling 'mean'")
            mask = mask * enc["token_type_ids"]
        return pool(self.encoder(**enc).last_hidden_state, mask, "mean" if self.pooling == "response" else self.pooling)

    def config_dict(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def load_encoder(name_or_path: str, trust_remote_code: bool = False):
        """(encoder, tokenizer) to train, the encoder in float32 whatever dtype its checkpoint was saved in.

        Why: transformers >= 5 loads a checkpoint in its saved dtype, and an optimizer step on bf16 weights
        rounds away any update below ~0.4% of a weight (bf16 keeps 8 bits of mantissa), i.e. every update at
        fine-tuning learning rates. A SmolLM2 (bf16) reward model trained that way stayed at chance (0.51 / 0.50)
        while only its float32 head moved; in float32 it reached 0.66 / 0.61 (docs/results.md). bf16 compute
        comes from autocast, as for MiniLM."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        from preforch.models import load_pretrained, resolve

        path = resolve(name_or_path)
        return (load_pretrained(AutoModel, path, "encoder", dtype=torch.float32, trust_remote_code=trust_remote_code),
                load_pretrained(AutoTokenizer, path, "tokenizer", trust_remote_code=trust_remote_code))

    def save_pretrained(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        with atomic_directory(path) as tmp:
            self.encoder.save_pretrained(tmp / "encoder", safe_serialization=True)
            self.tokenizer.save_pretrained(tmp / "encoder")
            save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, tmp / "head.safetensors")
            atomic_write_json(tmp / self.CONFIG_FILE, {"pooling": self.pooling, **self.config_dict()})
            hf = self.hf_config()
            if hf is not None:  # the same folder as a transformers model (modeling_preforch.py)
                hf.save_pretrained(tmp)
                self.tokenizer.save_pretrained(tmp)
                if self.tokenizer.is_fast:  # formats raw prompts as preforch does, for pipelines
                    from preforch.modeling_preforch import export_tokenizer

                    export_tokenizer(str(tmp), hf.kind)
                shutil.copyfile(Path(__file__).with_name("modeling_preforch.py"), tmp / "modeling_preforch.py")

    def hf_config(self):
        """The `modeling_preforch.PreforchConfig` that makes a saved folder `AutoModelForSequenceClassification`-
        loadable, or None for a model that has none."""
        return None

    @classmethod
    def read_config(cls, path: str | Path) -> dict:
        file = Path(path) / cls.CONFIG_FILE
        if not file.is_file():
            raise ConfigError(f"{path}: not a {cls.__name__} folder (missing {cls.CONFIG_FILE})")
        return read_json(file)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None):
        from transformers import AutoModel, AutoTokenizer

        from preforch.io import load_safetensors
        from preforch.models import load_pretrained

        path = Path(path)
        cfg = cls.read_config(path)
        encoder = load_pretrained(AutoModel, str(path / "encoder"), "encoder")
        try:
            model = cls._from_parts(encoder, load_pretrained(AutoTokenizer, str(path / "encoder"), "tokenizer"), cfg)
        except KeyError as e:
            raise ConfigError(f"{path / cls.CONFIG_FILE}: missing field {e}") from None
        model.head.load_state_dict(load_safetensors(path / "head.safetensors"))
        return model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()

    @classmethod
    def _from_parts(cls, encoder, tokenizer, cfg: dict):
        raise NotImplementedError
