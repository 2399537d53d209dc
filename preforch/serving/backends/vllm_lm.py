"""Candidate generation through vLLM (`serve --backend vllm`): the same `sample` / `model_and_tokenizer` interface
as `lm.CausalLM`, so the plain, best-of-n, wic and moslim kinds answer through it unchanged. vLLM needs a GPU; its
`SamplingParams(n=...)` samples a prompt's candidates in one request (what `best_of` once did server-side)."""

from __future__ import annotations

from preforch.errors import ConfigError
from preforch.generation.sampling import Prompts, Replies, SamplingConfig
from preforch.serving.backends.lm import CausalLM


def check_vllm() -> None:
    """A `ConfigError` saying what is missing when vLLM cannot run here (not installed, or no GPU)."""
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("--backend vllm: vLLM is not installed (pip install vllm, on a machine with a GPU)")
    if not torch.cuda.is_available():
        raise ConfigError("--backend vllm: vLLM needs a GPU and none is visible; use --backend hf")


class VllmLM:
    """`path`: hub id, local folder or bundled alias ('smollm2'); the engine starts on first use."""

    def __init__(self, path: str, trust_remote_code: bool = False):
        check_vllm()
        self.path, self.trust_remote_code = path, trust_remote_code
        self._llm = None

    def engine(self):
        if self._llm is None:
            from vllm import LLM

            from preforch.models import resolve

            self._llm = LLM(model=resolve(self.path), trust_remote_code=self.trust_remote_code)
        return self._llm

    def model_and_tokenizer(self):
        """(None, tokenizer): vLLM holds the model; the server counts tokens with the tokenizer."""
        return None, self.engine().get_tokenizer()

    def sample(self, prompts: Prompts, sampling: SamplingConfig) -> Replies:
        """sampling.num_candidates replies per chat prompt, [P][n], seeded with sampling.seed (greedy at temperature 0)."""
        from vllm import SamplingParams

        params = SamplingParams(n=sampling.num_candidates, temperature=sampling.temperature,
                                top_p=sampling.top_p if sampling.temperature else 1.0,
                                max_tokens=sampling.max_new_tokens, seed=sampling.seed)
        outputs = self.engine().chat([list(p) for p in prompts], params, use_tqdm=False)
        return [[c.text for c in out.outputs] for out in outputs]


def causal_lm(path: str, options):
    """The model a kind samples with: vLLM under `options.backend == 'vllm'`, else Hugging Face `generate`."""
    return VllmLM(path, options.trust_remote_code) if options.backend == "vllm" else CausalLM(path, options.trust_remote_code)
