"""`preforch serve` for the ecosystem's clients: /v1/score as a remote reward model, default and model-name
preferences, usage, streaming, /v1/completions and the API key."""

from __future__ import annotations

import math

import pytest
import torch

from preforch.errors import ConfigError
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.normalization import ZScore
from preforch.rewards.sources import RuleReward
from preforch.serving.config import ServeConfig
from preforch.serving.policies.policy import PreferencePolicy
from preforch.serving.server.api_schema import Limits
from preforch.serving.server.http import create_app
from preforch.serving.server.serve import load_served
from preforch.serving.server.served import Served
from tests.serving.server.test_http import HELLO, running


class Fixed(PreferencePolicy):
    """Answers `reply` to everything; has no tokenizer."""

    kind, Settings, shares_candidates = "fixed", None, True

    def __init__(self, objectives=("conciseness", "no_refusal"), reply="fine"):
        self._objectives, self.reply = tuple(objectives), reply

    @property
    def objectives(self):
        return self._objectives

    def candidates(self, prompts, weightings, sampling):
        return [[self.reply] * sampling.num_candidates for _ in prompts]


def rules_ensemble() -> RewardEnsemble:
    """Two rules with hand-set statistics, so every score can be computed by hand."""
    return RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("no_refusal", "no_refusal")],
                          ZScore(torch.tensor([-2.0, 0.5]), torch.tensor([0.5, 0.25]), 10))


def client_for(served: Served, **limits):
    from fastapi.testclient import TestClient

    return TestClient(create_app(served, Limits(**limits)))


def test_score_gives_each_objectives_normalised_score_the_weights_and_the_combined_reward():
    served = Served(Fixed(), rules_ensemble(), default_preference="conciseness=0.5,no_refusal=0.5")
    items = [{"messages": HELLO, "reply": "two words"},
             {"messages": HELLO, "reply": "I'm sorry, no", "preference": {"conciseness": 0.2, "no_refusal": 0.8}}]
    with client_for(served) as c:
        r = c.post("/v1/score", json={"items": items})
    assert r.status_code == 200, r.text
    first, second = r.json()["data"]
    # "two words": conciseness -log(3), no_refusal 1 -> z = (-log 3 + 2) / 0.5, (1 - 0.5) / 0.25
    z1 = [(-math.log(3) + 2) / 0.5, 2.0]
    assert first["raw_scores"] == pytest.approx({"conciseness": -math.log(3), "no_refusal": 1.0})
    assert first["scores"] == pytest.approx(dict(zip(["conciseness", "no_refusal"], z1)))
    assert first["weights"] == {"conciseness": 0.5, "no_refusal": 0.5}  # the server's default
    assert first["reward"] == pytest.approx(0.5 * z1[0] + 0.5 * z1[1])
    # "I'm sorry, no": -log(4) and a refusal (0), under the item's own preference
    z2 = [(-math.log(4) + 2) / 0.5, -2.0]
    assert second["weights"] == pytest.approx({"conciseness": 0.2, "no_refusal": 0.8})
    assert second["reward"] == pytest.approx(0.2 * z2[0] + 0.8 * z2[1])


def test_an_objective_that_does_not_apply_is_null_and_the_reward_combines_the_others():
    """exact match cannot judge "Say hello": its score is null in every reply body (before: NaN, which no JSON
    carries) and /v1/score's reward renormalises the weights of the two rules that apply."""
    from preforch.data.arithmetic import make_problems

    objectives = ("conciseness", "no_refusal", "arithmetic")
    ensemble = RewardEnsemble([*rules_ensemble().sources, RuleReward("arithmetic", "exact_match")],
                              ZScore(torch.tensor([-2.0, 0.5, 0.5]), torch.tensor([0.5, 0.25, 0.5]), 10))
    problem = make_problems(1, seed=0)[0]
    served = Served(Fixed(objectives, reply="two words"), ensemble,
                    default_preference="conciseness=0.25,no_refusal=0.25,arithmetic=0.5")
    items = [{"messages": HELLO, "reply": "two words"},
             {"messages": list(problem.prompt), "reply": f"Answer: {problem.answer}"}]
    with client_for(served) as c:
        scored = c.post("/v1/score", json={"items": items})
        chat = c.post("/v1/chat/completions", json={"messages": HELLO})
        explained = c.post("/v1/explain", json={"messages": HELLO, "n": 2})
    assert scored.status_code == chat.status_code == explained.status_code == 200, scored.text + chat.text + explained.text
    hello, solved = scored.json()["data"]
    z = [(-math.log(3) + 2) / 0.5, 2.0]
    assert hello["scores"]["arithmetic"] is None and hello["raw_scores"]["arithmetic"] is None
    assert hello["reward"] == pytest.approx(0.5 * z[0] + 0.5 * z[1])  # 1/4, 1/4 of what applies -> 1/2, 1/2
    assert solved["scores"]["arithmetic"] == 1.0 and math.isfinite(solved["reward"])
    assert chat.json()["choices"][0]["scores"] == pytest.approx({"conciseness": z[0], "no_refusal": z[1], "arithmetic": None})
    for candidate in explained.json()["candidates"]:
        assert candidate["scores"]["arithmetic"] is None and candidate["combined"] == pytest.approx(hello["reward"])


def test_score_refuses_what_it_cannot_answer():
    with client_for(Served(Fixed(), rules_ensemble()), max_score_items=2, max_prompt_chars=50) as c:
        no_orchestrator = c.post("/v1/score", json={"items": [{"messages": HELLO, "reply": "x"}]})
        assert no_orchestrator.status_code == 400 and "no orchestrator" in no_orchestrator.json()["error"]["message"]
        body = {"items": [{"messages": HELLO, "reply": "x"}] * 3, "preference": {"conciseness": 1, "no_refusal": 0}}
        assert "items: 3 is over" in c.post("/v1/score", json=body).json()["error"]["message"]
        body = {"items": [{"messages": HELLO, "reply": "x" * 51}], "preference": {"conciseness": 1, "no_refusal": 0}}
        r = c.post("/v1/score", json=body)
        assert r.status_code == 413 and r.json()["error"]["message"].startswith("items.0.reply: 51 characters")
        assert c.post("/v1/score", json={"items": [{"reply": "x"}]}).json()["error"]["message"].startswith("items.0.messages")
    with client_for(Served(Fixed())) as c:
        r = c.post("/v1/score", json={"items": [{"messages": HELLO, "reply": "x"}]})
        assert r.status_code == 400 and "no reward ensemble" in r.json()["error"]["message"]


def test_default_and_model_name_preferences():
    served = Served(Fixed(), name="preforch", default_preference="conciseness=0.25,no_refusal=0.75")
    with client_for(served) as c:
        used = lambda body: c.post("/v1/chat/completions", json={"messages": HELLO, **body}).json()
        assert used({})["preference"] == {"conciseness": 0.25, "no_refusal": 0.75}
        assert used({"model": "preforch:conciseness=1,no_refusal=0"})["preference"] == {"conciseness": 1.0, "no_refusal": 0.0}
        assert used({"model": "preforch:conciseness=1,no_refusal=0",
                     "preference": {"conciseness": 0.5, "no_refusal": 0.5}})["preference"]["conciseness"] == 0.5
        assert used({"model": "other"})["preference"]["conciseness"] == 0.25  # a plain model name names no preference
        assert used({"model": "preforch:conciseness=0.7"})["error"]["message"].startswith("model: weights must sum to 1")


def test_a_default_preference_the_server_cannot_fill_fails_at_start(tiny_policy_dir, tiny_ensemble_dir):
    with pytest.raises(ConfigError, match="--weights helpful=0.5,auto: 'auto' fills from the orchestrator"):
        load_served(ServeConfig(policy=tiny_policy_dir, ensemble=tiny_ensemble_dir, orchestrator="", weights="helpful=0.5,auto"))


@pytest.fixture(scope="module")
def served(tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir) -> Served:
    return load_served(ServeConfig(policy=tiny_policy_dir, ensemble=tiny_ensemble_dir, orchestrator=tiny_orchestrator_dir,
                                   num_candidates=2, model_name="tiny", api_key="s3cret"))


def test_the_openai_client_streams_counts_usage_completes_and_needs_the_key(served):
    from openai import AuthenticationError, OpenAI

    with running(create_app(served)) as (url, _):
        api = OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        whole = api.chat.completions.create(model="tiny", messages=HELLO, max_tokens=4, seed=1)
        chunks = list(api.chat.completions.create(model="tiny", messages=HELLO, max_tokens=4, seed=1, stream=True,
                                                  stream_options={"include_usage": True}))
        text = api.completions.create(model="tiny", prompt=["Say hi", "Say bye"], max_tokens=3, n=1, seed=2)
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    # counted by re-tokenising the texts (a kind returns text): a random tiny model's decoded reply can re-tokenise
    # to more tokens than it generated
    assert whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content  # same seed, same reply, sent as events
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert text.object == "text_completion" and len(text.choices) == 2 and text.usage.prompt_tokens > 0


def test_without_the_key_every_v1_route_is_401_naming_the_header(served):
    with client_for(served) as c:
        r = c.post("/v1/score", json={"items": [{"messages": HELLO, "reply": "x"}]})
        assert r.status_code == 401 and "Authorization" in r.json()["error"]["message"]
        assert c.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/health").status_code == 200  # liveness checks need no key
        ok = c.post("/v1/score", headers={"Authorization": "Bearer s3cret"},
                    json={"items": [{"messages": HELLO, "reply": "Hello there"}]})
        assert ok.status_code == 200 and sum(ok.json()["data"][0]["weights"].values()) == pytest.approx(1, abs=1e-5)


def test_the_rl_framework_adapters_call_score_as_a_remote_reward_model(monkeypatch):
    """examples/remote_reward.py as verl (compute_score) and OpenRLHF (reward_func) would call it."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("remote_reward", Path(__file__).parents[3] / "examples" / "remote_reward.py")
    remote = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(remote)
    served = Served(Fixed(), rules_ensemble(), default_preference="conciseness=0.5,no_refusal=0.5", api_key="k")
    with running(create_app(served)) as (url, _):
        monkeypatch.setenv("PREFORCH_SCORE_URL", f"{url}/v1/score")
        monkeypatch.setenv("PREFORCH_API_KEY", "k")
        verl = remote.compute_score("hh", "two words", None, {"prompt": [{"role": "user", "content": "hi"}]})
        openrlhf = remote.reward_func(["Q: hi A: two words", "Q: yo A: I'm sorry, no"], ["Q: hi A: ", "Q: yo A: "], None)
        monkeypatch.setenv("PREFORCH_PREFERENCE", "conciseness=1,no_refusal=0")
        concise_only = remote.score_batch(["hi"], ["two words"])[0]
    z = [(-math.log(3) + 2) / 0.5, 2.0]
    assert verl == pytest.approx(0.5 * z[0] + 0.5 * z[1])
    assert openrlhf.tolist() == pytest.approx([0.5 * z[0] + 0.5 * z[1], 0.5 * (-math.log(4) + 2) / 0.5 + 0.5 * -2.0])
    assert concise_only["reward"] == pytest.approx(z[0]) and concise_only["weights"]["conciseness"] == 1.0


def test_openai_fields_are_honoured_or_refused_by_name_never_dropped():
    served = Served(Fixed(reply="two words. And then more"), rules_ensemble(), default_preference="conciseness=0.5,no_refusal=0.5")
    with client_for(served) as c:
        chat = lambda **body: c.post("/v1/chat/completions", json={"messages": HELLO, **body})
        stopped = chat(stop=".")
        assert stopped.json()["choices"][0]["message"]["content"] == "two words"
        assert stopped.json()["choices"][0]["scores"]["conciseness"] == pytest.approx((-math.log(3) + 2) / 0.5)  # the cut reply's
        assert chat(stop=["x"] * 5).json()["error"]["message"].startswith("stop: up to 4")
        for body, message in [({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools: this server does not implement"),
                              ({"response_format": {"type": "json_object"}}, "response_format: this server does not implement"),
                              ({"logprobs": True}, "logprobs: this server does not implement"),
                              ({"stream": "yes"}, "stream: Input should be a valid boolean")]:
            r = chat(**body)
            assert r.status_code == 400 and r.json()["error"]["message"].startswith(message), r.text
        assert chat(logprobs=False, tools=[], response_format={"type": "text"}).status_code == 200  # asking for nothing
        text = c.post("/v1/completions", json={"prompt": "Say hi", "stop": "."}).json()
        assert text["choices"][0]["text"] == "two words" and text["preference"] == {"conciseness": 0.5, "no_refusal": 0.5}
        assert set(text["choices"][0]["scores"]) == {"conciseness", "no_refusal"}
        bad = c.post("/v1/score", json={"items": [{"messages": HELLO, "reply": "x"},
                                                  {"messages": HELLO, "reply": "x", "preference": {"helpful": 1}}]})
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("items.1.preference"), bad.text


def test_every_error_status_has_openais_body_and_the_bearer_scheme_is_case_insensitive():
    with client_for(Served(Fixed(), api_key="k")) as c:
        auth = {"Authorization": "bearer k"}
        assert c.get("/v1/models", headers=auth).status_code == 200
        missing, wrong_method = c.get("/v1/nothing", headers=auth), c.get("/v1/chat/completions", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
    assert wrong_method.status_code == 405 and "GET /v1/chat/completions" in wrong_method.json()["error"]["message"]
