"""Kind `plain`: a causal LM that ignores the preference; one set of samples serves every weighting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from preforch.generation.sampling import SamplingConfig
from preforch.serving.backends.vllm_lm import causal_lm
from preforch.serving.policies.policy import LoadOptions, PreferencePolicy, Prompts, Replies


@dataclass(frozen=True)
class PlainSettings:
    """policy: the model (hub id, folder or alias); objectives: those its (ignored) weights name."""

    policy: str = field(metadata={"path": True})
    objectives: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "objectives", tuple(self.objectives))  # a JSON list


class PlainPolicy(PreferencePolicy):
    kind = "plain"
    Settings = PlainSettings
    shares_candidates = True

    def __init__(self, settings: PlainSettings, options: LoadOptions):
        super().__init__(settings, options)
        self.lm = causal_lm(settings.policy, options)

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.settings.objectives

    def candidates(self, prompts: Prompts, weightings: Sequence[torch.Tensor], sampling: SamplingConfig) -> Replies:
        return self.lm.sample(prompts, sampling)
