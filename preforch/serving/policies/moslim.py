"""Kind `moslim`: a chat model steered by a `<levels ...>` tag in its prompt (MOSLIM; trained with train-policy
--method moslim, or untrained: prompting alone).

A preference w [P, K] becomes a tag by the PRO + MOSLIM rule (`levels_from_weights`): every objective weighted
at least 1/K, and the top-weighted one, is asked for at its top level, the rest are left out. So when the user
states nothing, the orchestrator's weights choose the mask and the levels. Objectives the classifier has no head
for (e.g. a judge's conciseness) take part in the rule but cannot be named; a row naming none stays untagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from preforch.data.conditioning import MASKED, levels_from_weights, render
from preforch.data.schema import Message
from preforch.errors import ConfigError
from preforch.generation.moslim_spec import SPEC_FILE, read_spec
from preforch.generation.sampling import SamplingConfig
from preforch.serving.backends.vllm_lm import causal_lm
from preforch.serving.policies.policy import LoadOptions, PreferencePolicy, Prompts, Replies


@dataclass(frozen=True)
class MoslimSettings:
    """policy: a causal LM (a train-policy --method moslim OUTPUT_DIR/policy has a moslim.json naming its heads);
    classifier: the classification reward model whose heads and level counts the tag uses (default: the
    policy's moslim.json); objectives: what the weights' columns mean (default: the heads)."""

    policy: str = field(metadata={"path": True})
    classifier: Optional[str] = field(default=None, metadata={"path": True})
    objectives: tuple[str, ...] = ()


class MoslimPolicy(PreferencePolicy):
    kind = "moslim"
    Settings = MoslimSettings
    marker_file = SPEC_FILE

    def __init__(self, settings: MoslimSettings, options: LoadOptions):
        from preforch.models import resolve

        super().__init__(settings, options)
        try:
            spec = read_spec(settings.classifier or resolve(settings.policy))
        except ConfigError:
            raise ConfigError(f"moslim policy {settings.policy}: no moslim.json and no classification reward model at "
                              f"setting 'classifier' ({settings.classifier}); name one in a preference_policy.json, "
                              "e.g. {\"kind\": \"moslim\", \"policy\": \"smollm2\", \"classifier\": \"runs/moslim_rm\"}") from None
        self.heads, self.num_levels = tuple(spec["objectives"]), tuple(spec["num_levels"])
        self._objectives = tuple(settings.objectives) or self.heads
        self.lm = causal_lm(settings.policy, options)

    @property
    def objectives(self) -> tuple[str, ...]:
        return self._objectives

    def tag_levels(self, weights: torch.Tensor) -> torch.Tensor:
        """Weights [P, K] over `objectives` -> requested levels [P, H] over the classifier's heads (MASKED: left out)."""
        counts = [self.num_levels[self.heads.index(o)] if o in self.heads else 2 for o in self.objectives]
        asked = levels_from_weights(weights, counts)
        cols = [asked[:, self.objectives.index(h)] if h in self.objectives else torch.full((len(asked),), MASKED)
                for h in self.heads]
        return torch.stack(cols, dim=-1)

    def conditioned(self, prompts: Prompts, weights: torch.Tensor) -> list[tuple[Message, ...]]:
        return [render(p, row, self.heads, "levels", self.num_levels) if (row != MASKED).any() else tuple(p)
                for p, row in zip(prompts, self.tag_levels(weights))]

    def candidates(self, prompts: Prompts, weightings: Sequence[torch.Tensor], sampling: SamplingConfig) -> Replies:
        return self.lm.sample(self.asked(prompts, weightings), sampling)
