"""`preforch serve` as the remote reward model of an RL framework: OpenRLHF's /get_reward, vLLM's scoring request,
and a reward-only server."""

from __future__ import annotations

import math

import pytest
import torch

from preforch.data.schema import content_key
from preforch.errors import ConfigError
from preforch.serving.config import ServeConfig
from preforch.serving.server.prompt_text import TemplateReader
from preforch.serving.server.serve import load_served
from preforch.serving.server.served import Served
from tests.serving.server.test_http import HELLO
from tests.serving.server.test_http_clients import Fixed, client_for, rules_ensemble

HALF = "conciseness=0.5,no_refusal=0.5"
# "two words": conciseness -log(3), no_refusal 1; "I'm sorry, no": -log(4), a refusal (0); z by the hand-set statistics
TWO_WORDS = 0.5 * (-math.log(3) + 2) / 0.5 + 0.5 * 2.0
SORRY = 0.5 * (-math.log(4) + 2) / 0.5 + 0.5 * -2.0


@pytest.fixture(scope="module")
def tokenizer(tiny_policy_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_policy_dir)


@pytest.fixture
def reward_server(tokenizer):
    return Served(None, rules_ensemble(), default_preference=HALF, reader=TemplateReader.from_tokenizer(tokenizer))


def openrlhf_payload(tokenizer, replies):
    """What OpenRLHF's remote_rm_fn posts: queries decoded with special tokens kept (left padding, end of turn),
    prompts after the chat template, labels."""
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": f"Question {i}"}], tokenize=False,
                                             add_generation_prompt=True) for i in range(len(replies))]
    queries = [tokenizer.pad_token * i + p + r + tokenizer.eos_token for i, (p, r) in enumerate(zip(prompts, replies))]
    return {"query": queries, "prompts": prompts, "labels": [""] * len(replies)}


def test_get_reward_answers_openrlhfs_payload_in_its_reply_shape(reward_server, tokenizer):
    with client_for(reward_server) as c:
        r = c.post("/get_reward", json=openrlhf_payload(tokenizer, ["two words", "I'm sorry, no"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}  # what openrlhf/cli/serve_rm.py returns
    assert body["rewards"] == pytest.approx([TWO_WORDS, SORRY]) and body["scores"] == body["rewards"]
    logs = body["extra_logs"]
    assert logs["score/no_refusal"] == pytest.approx([2.0, -2.0]) and logs["applies/no_refusal"] == [1.0, 1.0]
    assert logs["weight/conciseness"] == [0.5, 0.5]
    assert all(len(v) == 2 for v in logs.values())


def test_get_reward_uses_the_orchestrators_or_the_requests_preference(reward_server, tokenizer):
    payload = {**openrlhf_payload(tokenizer, ["two words"]), "preference": {"conciseness": 1, "no_refusal": 0}}
    with client_for(reward_server) as c:
        r = c.post("/get_reward", json=payload)
    assert r.json()["rewards"] == pytest.approx([(-math.log(3) + 2) / 0.5])


@pytest.mark.parametrize("change, status, message", [
    ({"prompts": ["only one"]}, 400, "prompts: 1 prompts for 2 queries"),
    ({"prompts": ["not in it", "nor here"]}, 400, "query.0: does not contain its prompt"),
    ({"query": "a string"}, 400, "query: Input should be a valid list"),
    ({"query": []}, 400, "query: List should have at least 1 item"),
    ({"preference": {"helpful": 1}}, 400, "preference"),
    ({"query": ["x" * 9000, "y"], "prompts": ["x", "y"]}, 413, "query.0: "),
])
def test_get_reward_refuses_bad_payloads_naming_the_field(reward_server, tokenizer, change, status, message):
    with client_for(reward_server) as c:
        r = c.post("/get_reward", json={**openrlhf_payload(tokenizer, ["a", "b"]), **change})
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"].startswith(message)


def test_vllm_style_score_requests_get_vllms_response_shape(reward_server):
    with client_for(reward_server) as c:
        one_prompt = c.post("/score", json={"model": "m", "text_1": "Say hello", "text_2": ["two words", "I'm sorry, no"]})
        paired = c.post("/v1/score", json={"text_1": ["Say hello", "Say bye"], "text_2": ["two words", "I'm sorry, no"]})
        unequal = c.post("/v1/score", json={"text_1": ["a", "b"], "text_2": ["x", "y", "z"]})
        missing = c.post("/v1/score", json={"text_1": "a"})
        preforch_shape = c.post("/v1/score", json={"items": [{"messages": HELLO, "reply": "two words"}]})
    for r in (one_prompt, paired):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "list" and body["id"].startswith("score-")
        assert [d["index"] for d in body["data"]] == [0, 1] and {d["object"] for d in body["data"]} == {"score"}
        assert [d["score"] for d in body["data"]] == pytest.approx([TWO_WORDS, SORRY])
    assert unequal.status_code == 400 and unequal.json()["error"]["message"].startswith("text_1: 2 texts for 3")
    assert missing.status_code == 400 and missing.json()["error"]["message"].startswith("text_2: Field required")
    assert preforch_shape.json()["data"][0]["reward"] == pytest.approx(TWO_WORDS)


def test_a_reward_only_server_scores_and_says_it_does_not_generate(reward_server):
    with client_for(reward_server) as c:
        chat = c.post("/v1/chat/completions", json={"messages": HELLO})
        health = c.get("/health").json()
    assert chat.status_code == 400 and "serves rewards only" in chat.json()["error"]["message"]
    assert health["kind"] == "reward-only" and health["objectives"] == ["conciseness", "no_refusal"]
    with pytest.raises(ConfigError, match="^reward_only: a reward-only server needs --ensemble"):
        ServeConfig(reward_only=True, ensemble="")


def test_serve_reward_only_loads_no_policy_and_reads_the_named_template(tiny_policy_dir, tiny_ensemble_dir,
                                                                        tiny_orchestrator_dir, tokenizer):
    served = load_served(ServeConfig(policy="no/such/model", reward_only=True, ensemble=tiny_ensemble_dir,
                                     orchestrator=tiny_orchestrator_dir, tokenizer=tiny_policy_dir))
    assert served.policy is None and served.reader.reads_templates
    with client_for(served) as c:
        r = c.post("/get_reward", json=openrlhf_payload(tokenizer, ["Sure.", "No."]))
    assert r.status_code == 200, r.text
    weights = r.json()["extra_logs"]
    assert sum(weights[f"weight/{o}"][0] for o in served.objectives) == pytest.approx(1, abs=1e-5)  # the orchestrator's


def test_the_servers_caches_keep_the_most_recent_prompts_and_pairs_up_to_the_size(tiny_ensemble_dir,
                                                                                    tiny_orchestrator_dir):
    """Both caches are LRUs of `cache_size`: the oldest prompt (pair) goes first, one used again stays, and an
    answer never depends on what was evicted."""
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble

    served = Served(None, RewardEnsemble.load(tiny_ensemble_dir), PreferenceOrchestrator.from_pretrained(tiny_orchestrator_dir),
                    cache_size=3)
    prompt = lambda i: ({"role": "user", "content": f"prompt {i}"},)
    first = served.weights([prompt(0)], [None])
    seen = []
    for i in range(1, 10):
        served.weights([prompt(i)] * 2, [None, None])
        served.weights([prompt(0)], [None])  # prompt 0 stays the most recent: never evicted
        seen.append(served.orchestrator.cached_prompts)
    assert seen == [2, 3, 3, 3, 3, 3, 3, 3, 3]
    assert list(served.orchestrator._cache)[-1] == content_key(prompt(0)) and content_key(prompt(1)) not in served.orchestrator._cache
    assert served.orchestrator._cache.evicted == 7
    assert torch.equal(served.weights([prompt(1)], [None]), served.orchestrator.predict([prompt(1)]))  # computed again
    assert torch.equal(served.weights([prompt(0)], [None]), first)

    replies = [f"reply {i}" for i in range(5)]
    raw, _ = served.scores([prompt(0)] * 5, replies)  # five pairs in one call: more than the cache holds
    assert served.cached() == {"prompts": 3, "pairs": 3, "limit": 3}
    assert torch.equal(served.scores([prompt(0)] * 5, replies)[0].values, raw.values)


def test_serve_cache_size_bounds_both_caches_and_health_reports_them(tiny_ensemble_dir, tiny_orchestrator_dir):
    served = load_served(ServeConfig(reward_only=True, ensemble=tiny_ensemble_dir, orchestrator=tiny_orchestrator_dir,
                                     cache_size=2))
    assert served.orchestrator._cache.max_entries == served.orchestrator._features.max_entries == 2
    assert served.ensemble._cache.max_entries == 2
    with client_for(served) as c:
        items = [{"messages": [{"role": "user", "content": f"q{i}"}], "reply": "fine"} for i in range(4)]
        assert c.post("/v1/score", json={"items": items}).status_code == 200
        assert c.get("/health").json()["cached"] == {"prompts": 2, "pairs": 2, "limit": 2}
    assert ServeConfig().cache_size == 50_000 and Served(None, served.ensemble).cache_size == 50_000
    # an ensemble a kind loads itself (best-of-n over another folder, a MAHALO guide) is bounded alike under serve
    from preforch.serving.policies.policy import LoadOptions

    assert LoadOptions(cache_size=2).ensemble(tiny_ensemble_dir)._cache.max_entries == 2
    assert LoadOptions().ensemble(tiny_ensemble_dir)._cache.max_entries is None  # evaluate keeps every score
    with pytest.raises(ConfigError, match="cache_size: must be > 0"):
        ServeConfig(cache_size=0)


def test_each_route_hands_freed_memory_back_after_its_work(tiny_ensemble_dir, tiny_orchestrator_dir, monkeypatch):
    """glibc keeps freed memory in its heaps; the server trims them after every route's work (the soak run's leak)."""
    import preforch.serving.server.served as served_module
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble

    trims = []
    monkeypatch.setattr(served_module, "_malloc_trim", lambda pad: trims.append(pad))
    served = Served(None, RewardEnsemble.load(tiny_ensemble_dir), PreferenceOrchestrator.from_pretrained(tiny_orchestrator_dir))
    served.score([({"role": "user", "content": "hi"},)], ["hello"], [None])
    assert trims == [0]
    served.weights([({"role": "user", "content": "hi"},)], [None])  # a part of a route, not a route: no trim
    assert trims == [0]
