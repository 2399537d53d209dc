"""Kind `wic`: a train-wic policy (Pro-WiC / RiC, paper Eq. 10-11) reads the preference from a tag in its
prompt; it answers each weighting with its own samples, all weightings in one generation call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from preforch.data.schema import Message
from preforch.generation.sampling import SamplingConfig
from preforch.generation.wic_spec import SPEC_FILE, load_wic_spec
from preforch.serving.backends.vllm_lm import causal_lm
from preforch.serving.policies.policy import LoadOptions, PreferencePolicy, PromptTagged, Prompts, Replies


@dataclass(frozen=True)
class WicSettings:
    """policy: a train-wic OUTPUT_DIR/policy folder (its wic.json gives the objectives and the tag)."""

    policy: str = field(metadata={"path": True})


class WicPolicy(PreferencePolicy, PromptTagged):
    kind = "wic"
    Settings = WicSettings
    marker_file = SPEC_FILE

    def __init__(self, settings: WicSettings, options: LoadOptions):
        from preforch.models import resolve

        super().__init__(settings, options)
        self.spec = load_wic_spec(resolve(settings.policy))
        self.lm = causal_lm(settings.policy, options)

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.spec.objectives

    def conditioned(self, prompts: Prompts, weights: torch.Tensor) -> list[tuple[Message, ...]]:
        """The weights (Pro-WiC) or RiC's target scores for them written into each prompt."""
        return self.spec.condition(prompts, weights)

    def candidates(self, prompts: Prompts, weightings: Sequence[torch.Tensor], sampling: SamplingConfig) -> Replies:
        return self.lm.sample(self.asked(prompts, weightings), sampling)

    def language_model(self):
        return self.lm.model_and_tokenizer()
