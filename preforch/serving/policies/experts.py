"""What the soups and mod kinds share: a train-experts folder (one LoRA adapter per objective on one base model,
`generation/expert_set.py`), read and checked when the policy loads, its weights loaded on first use."""

from __future__ import annotations

from preforch.generation.expert_set import ExpertSet
from preforch.serving.policies.policy import LoadOptions, PreferencePolicy


class ExpertsPolicy(PreferencePolicy):
    """A kind whose settings name an experts folder (`policy`); the weights' K columns are its objectives."""

    def __init__(self, settings, options: LoadOptions):
        from preforch.models import resolve

        super().__init__(settings, options)
        self.experts = ExpertSet.read(resolve(settings.policy))  # bad folders fail here, before any generation
        self.trust_remote_code = options.trust_remote_code
        self._loaded = None

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.experts.objectives

    def model_and_tokenizer(self):
        """(peft model holding every expert as an adapter, named `self.experts.names`, tokenizer)."""
        if self._loaded is None:
            self._loaded = self.experts.load(self.trust_remote_code)
        return self._loaded
