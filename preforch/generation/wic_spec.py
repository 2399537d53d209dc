"""The `wic.json` spec a weights-in-context policy (Pro-WiC or RiC) is saved with: how it expects its prompts.
Written by `preforch train-wic` (alignment/wic.py), read by it and by the wic kind that serves the policy."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from preforch.data.conditioning import render
from preforch.data.schema import Message
from preforch.errors import ConfigError
from preforch.generation.wic_methods import WIC_METHODS, wic_method
from preforch.io import read_json
from preforch.rewards.scores import Scores, as_scores

SPEC_FILE = "wic.json"


@dataclass(frozen=True)
class WicSpec:
    """How a WiC policy expects its prompts; saved as `wic.json` next to the weights.

    score_low / score_high: per-objective 5% / 95% quantiles of the offline normalised scores over the replies
    each objective applies to (RiC targets).
    """

    method: str
    objectives: tuple[str, ...]
    tau: float
    score_low: tuple[float, ...]
    score_high: tuple[float, ...]

    @property
    def kind(self) -> str:
        """What its tag holds: its method's (generation/wic_methods.py), "weights" or "scores"."""
        return wic_method(self.method).tag

    def prompt_values(self, preferences: torch.Tensor) -> torch.Tensor:
        """What goes into the prompt for preferences [P, K], by its method: the weights (pro-wic) or RiC target
        scores (ric)."""
        return wic_method(self.method).prompt_values(preferences, self)

    def condition(self, prompts: Sequence[Sequence[Message]], preferences: torch.Tensor) -> list[tuple[Message, ...]]:
        """The prompts with their preferences [P, K] written in, as this policy was trained to read them."""
        return self.tagged(prompts, self.prompt_values(preferences))

    def tagged(self, prompts: Sequence[Sequence[Message]], values: Scores | torch.Tensor) -> list[tuple[Message, ...]]:
        """The prompts with the tag of their conditioning values [P, K] (weights, or RiC scores) in front, naming
        the objectives that apply to each (a plain tensor: all of them)."""
        s = as_scores(values)
        return [render(p, s.values[i], self.objectives, self.kind, named=s.applies[i]) for i, p in enumerate(prompts)]

    def to_dict(self) -> dict:
        return {**asdict(self), "kind": self.kind, "objectives": list(self.objectives),
                "score_low": list(self.score_low), "score_high": list(self.score_high)}


def load_wic_spec(policy_dir: str | Path) -> WicSpec:
    """Read OUTPUT_DIR/policy/wic.json; a clear `ConfigError` when it is missing or malformed."""
    file = Path(policy_dir) / SPEC_FILE
    if not file.is_file():
        raise ConfigError(f"{policy_dir}: not a weights-in-context policy (no {SPEC_FILE}); "
                          "train one with preforch train-wic --stage offline")
    d = read_json(file)
    try:
        spec = WicSpec(d["method"], tuple(d["objectives"]), float(d["tau"]), tuple(map(float, d["score_low"])),
                       tuple(map(float, d["score_high"])))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{file}: malformed {SPEC_FILE} ({type(e).__name__}: {e})") from None
    k = len(spec.objectives)
    if spec.method not in WIC_METHODS or len(spec.score_low) != k or len(spec.score_high) != k:
        raise ConfigError(f"{file}: malformed {SPEC_FILE} (method {spec.method!r}, {k} objectives, "
                          f"{len(spec.score_low)}/{len(spec.score_high)} score bounds)")
    return spec
