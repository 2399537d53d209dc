"""Reward sources: anything that maps (prompts, responses) to a [B, k] tensor of raw scores.

- `HFRewardModel`: a reward model folder or hub id. Either a Hugging Face sequence classifier
  (num_labels=1: one score; num_labels=K: one per objective, named by id2label), or a folder written by
  `preforch train-rm` (`MultiHeadRewardModel`: one backbone, K heads, all scored in one forward pass; or, with
  `--levels`, a MOSLIM `ClassifierRewardModel`, whose score per objective is its expected level).
- `RuleReward`: a plain Python function (e.g. conciseness).

An ensemble saves each source's `spec()` and rebuilds it through SOURCES, the one table of source kinds: the
spec's "kind" -> "module:Class", imported when used (like serving/policies/kinds.py's KINDS). A new kind of source is one
class and one row (docs/design.md, "Adding a reward source").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, Sequence

import torch

from preforch.data.schema import Message
from preforch.errors import ConfigError
from preforch.models import autocast, fast_bf16
from preforch.rewards.config import rule_objective
from preforch.rewards.formatting import encode_pairs, render_dialogue
from preforch.rewards.rules import resolve_rule
from preforch.tables import load_attr


SOURCES: dict[str, str] = {
    "hf": "preforch.rewards.sources:HFRewardModel",
    "rule": "preforch.rewards.sources:RuleReward",
}


class RewardSource(Protocol):
    kind: str  # its row in SOURCES, written into `spec()`
    objectives: tuple[str, ...]
    # True when the source may say an objective does not apply to a (prompt, reply) (NaN in `score`); a source
    # without it (a reward model) applies everywhere, and a NaN from it is an error
    may_not_apply: bool
    # True for a source trained on preference pairs (a reward model): it reads a folder `path`, and `at(folder)` is
    # the same source reading another folder of its kind (cross-fitting swaps in its fold models this way,
    # rewards/crossfit.py); a source that learned nothing (a rule) is shared by every fold
    learned: bool

    def score(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], **columns) -> torch.Tensor:
        """Raw rewards [B, len(objectives)]; NaN where an objective does not apply (only if `may_not_apply`).
        `columns`: dataset columns, one value per response (e.g. `solution`), as TRL hands them to reward functions;
        given only when the caller has some."""

    def spec(self, folder: str | os.PathLike | None = None) -> dict:
        """JSON-serialisable description, with "kind", from which `from_saved` rebuilds the source; a path in it
        relative to `folder` (the ensemble's) when given, so the saved ensemble loads from anywhere."""

    @classmethod
    def from_saved(cls, spec: dict, base_dir: str | None = None, device: str | None = None) -> "RewardSource":
        """The source `spec()` described; relative paths resolve against `base_dir`."""


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_reward_model(path: str, trust_remote_code: bool = False):
    """(model, tokenizer, head names) for a preforch multi-head folder or any HF sequence classifier."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from preforch.models import load_pretrained
    from preforch.rewards.multihead import REWARD_CONFIG, MultiHeadRewardModel

    from preforch.rewards.classifier import CLASSIFIER_CONFIG, ClassifierRewardModel

    for file, cls in ((REWARD_CONFIG, MultiHeadRewardModel), (CLASSIFIER_CONFIG, ClassifierRewardModel)):
        if (Path(path) / file).is_file():
            model = cls.from_pretrained(path, device="cpu")
            return model, model.tokenizer, model.objectives
    model = load_pretrained(AutoModelForSequenceClassification, path, "reward model", trust_remote_code=trust_remote_code)
    tok = load_pretrained(AutoTokenizer, path, "reward-model tokenizer", trust_remote_code=trust_remote_code)
    return model, tok, tuple(model.config.id2label[i] for i in range(model.config.num_labels))


class HFRewardModel:
    """A reward model scoring len(objectives) objectives per (prompt, response)."""

    kind: ClassVar[str] = "hf"
    may_not_apply: ClassVar[bool] = False
    learned: ClassVar[bool] = True

    def __init__(self, path: str, objectives: Sequence[str] | None = None, max_length: int | None = None,
                 prompt_max_tokens: int | None = None, batch_size: int = 64, device: str | None = None,
                 trust_remote_code: bool = False, bf16: bool | None = None):
        self.path, self.batch_size, self.trust_remote_code = str(path), batch_size, trust_remote_code
        self.device = device or default_device()
        self.bf16 = fast_bf16(self.device) if bf16 is None else bf16
        self.model, self.tokenizer, heads = load_reward_model(self.path, trust_remote_code)
        # Score with the input format the model was trained with, when it says (preforch models do).
        self.max_length = max_length or getattr(self.model, "max_length", 128)
        self.prompt_max_tokens = prompt_max_tokens or getattr(self.model, "prompt_max_tokens", 64)
        self.model.to(self.device).eval()
        self.objectives = tuple(objectives or heads)
        if len(self.objectives) != len(heads):
            raise ConfigError(f"reward model {self.path}: {len(heads)} head(s) but "
                              f"{len(self.objectives)} objective name(s) {list(self.objectives)}")

    @torch.no_grad()
    def outputs(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], forward=None) -> torch.Tensor:
        """`forward(tokenised batch)` [b, D] (default: the model's logits) for every pair, in input order: [B, D]."""
        forward = forward or (lambda enc: self.model(**enc).logits)
        rows: dict[int, torch.Tensor] = {}
        # Length-sorted batches waste little compute on padding.
        order = sorted(range(len(responses)), key=lambda i: len(responses[i]) + len(render_dialogue(prompts[i])))
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            enc = encode_pairs(self.tokenizer, [prompts[i] for i in idx], [responses[i] for i in idx],
                               self.max_length, self.prompt_max_tokens).to(self.device)
            with autocast(self.device, self.bf16):
                rows.update(zip(idx, forward(enc).float().cpu()))
        return torch.stack([rows[i] for i in range(len(responses))]) if rows else torch.empty(0, len(self.objectives))

    def score(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], **columns) -> torch.Tensor:
        return self.outputs(prompts, responses)  # a reward model reads the text only

    def at(self, folder: str | os.PathLike) -> "HFRewardModel":
        """The same reward model's settings over the model in `folder` (e.g. one of its cross-fitting folds)."""
        return HFRewardModel(str(folder), self.objectives, self.max_length, self.prompt_max_tokens,
                             device=self.device, trust_remote_code=self.trust_remote_code)

    def spec(self, folder: str | os.PathLike | None = None) -> dict:
        path = self.path
        if folder is not None and Path(path).is_dir():
            # relative to the ensemble folder (e.g. "../reward_model"): loads from any working directory and
            # after moving the run folder as a whole; a hub id stays as written
            path = os.path.relpath(Path(path).resolve(), Path(folder).resolve())
        return {"kind": self.kind, "path": path, "objectives": list(self.objectives), "max_length": self.max_length,
                "prompt_max_tokens": self.prompt_max_tokens, "trust_remote_code": self.trust_remote_code}

    @classmethod
    def from_saved(cls, spec: dict, base_dir: str | None = None, device: str | None = None) -> "HFRewardModel":
        path = spec["path"]
        if base_dir and not os.path.isabs(path) and os.path.isdir(os.path.join(base_dir, path)):
            path = os.path.join(base_dir, path)
        return cls(path, spec.get("objectives"), spec.get("max_length"), spec.get("prompt_max_tokens"), device=device,
                   trust_remote_code=spec.get("trust_remote_code", False))


@dataclass
class RuleReward:
    """One objective scored by a Python function over (last user turn, response) strings."""

    kind: ClassVar[str] = "rule"
    may_not_apply: ClassVar[bool] = True  # a rule returns None where it does not judge (TRL's convention)
    learned: ClassVar[bool] = False  # nothing trained: every cross-fitting fold shares it
    objective: str
    rule: str

    def __post_init__(self):
        self.fn = resolve_rule(self.rule)
        self.objectives = (self.objective,)

    @classmethod
    def from_spec(cls, spec: str) -> "RuleReward":
        """`conciseness` (objective named after the rule) or `objective=package.module:function`."""
        return cls(rule_objective(spec), spec.rpartition("=")[2])

    @classmethod
    def from_saved(cls, spec: dict, base_dir: str | None = None, device: str | None = None) -> "RuleReward":
        return cls(spec["objective"], spec["rule"])

    def score(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], **columns) -> torch.Tensor:
        # called as TRL's GRPOTrainer calls reward_funcs on conversational data, so TRL's functions work unchanged
        try:
            values = list(self.fn(prompts=[list(p) for p in prompts],
                                  completions=[[{"role": "assistant", "content": r}] for r in responses], **columns))
        except TypeError as e:  # most often the signature: a rule takes prompts=, completions= and **kwargs, as TRL's
            raise ConfigError(f"rule {self.rule!r}: {e} (a rule is called as fn(prompts=..., completions=..., "
                              "**columns), TRL's reward-function signature)") from None
        if len(values) != len(responses):
            raise ConfigError(f"rule {self.rule!r} returned {len(values)} scores for {len(responses)} responses")
        # None means "not applicable" in TRL; it becomes NaN there too
        return torch.tensor([math.nan if v is None else self._number(v) for v in values], dtype=torch.float32).unsqueeze(-1)

    def _number(self, value) -> float:
        """A rule's score as a float (ints, bools, numpy and 0-d tensors too); a string or other object is refused."""
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"rule {self.rule!r} returned {value!r}; a rule returns numbers, or None where it does "
                              "not apply") from None

    def spec(self, folder: str | os.PathLike | None = None) -> dict:
        return {"kind": self.kind, "objective": self.objective, "rule": self.rule}


def source_from_spec(spec: dict, base_dir: str | None = None, device: str | None = None) -> RewardSource:
    """Rebuild a source saved by `spec()` with the class of its kind's row in SOURCES."""
    kind = spec.get("kind")
    if kind not in SOURCES:
        raise ConfigError(f"reward source: unknown kind {kind!r} in {spec}")
    return load_attr(SOURCES[kind]).from_saved(spec, base_dir, device)
