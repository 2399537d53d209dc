"""serve --backend vllm: the kinds that sample a causal LM do it through vLLM's chat API (a stand-in vllm module
here: the real one needs a GPU), and a machine that cannot run vLLM is told why at start."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from preforch.errors import ConfigError
from preforch.generation.sampling import SamplingConfig
from preforch.serving.config import ServeConfig
from preforch.serving.policies.folder import load_preference_policy
from preforch.serving.policies.policy import LoadOptions
from preforch.serving.server.serve import load_served


@pytest.fixture
def fake_vllm(monkeypatch, tiny_policy_dir):
    """A `vllm` module recording what it is asked, and a GPU that 'is there'."""
    calls = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, model, trust_remote_code=False):
            calls["model"] = model

        def get_tokenizer(self):
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(tiny_policy_dir)

        def chat(self, messages, params, use_tqdm=True):
            calls.setdefault("chat", []).append((messages, params.kw))
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"reply {i}.{j}") for j in range(params.kw["n"])])
                    for i in range(len(messages))]

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    module.__spec__ = types.SimpleNamespace(name="vllm")
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object() if name == "vllm" else None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return calls


def test_plain_answers_through_vllm_with_one_request_per_prompt(fake_vllm, tiny_policy_dir):
    policy = load_preference_policy(tiny_policy_dir, "plain", objectives=("helpful", "harmless"),
                                    options=LoadOptions(backend="vllm"))
    prompts = [({"role": "user", "content": "hi"},), ({"role": "user", "content": "yo"},)]
    replies = policy.respond(prompts, torch.full((2, 2), 0.5), SamplingConfig(3, 7, 0.8, 0.9, seed=5))
    assert replies == [["reply 0.0", "reply 0.1", "reply 0.2"], ["reply 1.0", "reply 1.1", "reply 1.2"]]
    messages, params = fake_vllm["chat"][0]
    assert messages == [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "yo"}]]
    assert params == {"n": 3, "temperature": 0.8, "top_p": 0.9, "max_tokens": 7, "seed": 5}
    assert policy.tokenizer() is not None  # usage counts with vLLM's tokenizer


def test_a_machine_that_cannot_run_vllm_is_told_why_at_start(tiny_policy_dir, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="--backend vllm: vLLM is not installed"):
        load_served(ServeConfig(policy=tiny_policy_dir, method="plain", ensemble="", orchestrator="", backend="vllm"))
    with pytest.raises(ConfigError, match="backend: expected one of hf, vllm"):
        ServeConfig(backend="tgi")
