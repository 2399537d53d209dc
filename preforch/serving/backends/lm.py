"""A causal LM that samples replies, loaded on first use: what the plain and wic kinds answer with."""

from __future__ import annotations

from preforch.generation.sampling import Prompts, Replies, SamplingConfig, sample_candidates


class CausalLM:
    """`path`: hub id, local folder or bundled alias ('smollm2')."""

    def __init__(self, path: str, trust_remote_code: bool = False):
        self.path, self.trust_remote_code = path, trust_remote_code
        self._loaded = None

    def model_and_tokenizer(self):
        if self._loaded is None:
            from preforch.models import load_policy

            self._loaded = load_policy(self.path, trust_remote_code=self.trust_remote_code)
        return self._loaded

    def sample(self, prompts: Prompts, sampling: SamplingConfig) -> Replies:
        """sampling.num_candidates replies per chat prompt, [P][n]; seeded with sampling.seed on every call, so
        the same call gives the same replies."""
        from transformers import set_seed

        model, tok = self.model_and_tokenizer()
        set_seed(sampling.seed)
        return sample_candidates(model, tok, prompts, sampling)
