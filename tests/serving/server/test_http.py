"""`preforch serve`: the OpenAI-compatible endpoint on tiny random models, its limits, queue and shutdown."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest

from preforch.errors import ConfigError

from preforch.serving.config import ServeConfig
from preforch.serving.policies.policy import PreferencePolicy
from preforch.serving.server.api_schema import Limits
from preforch.serving.server.http import create_app
from preforch.serving.server.serve import load_served
from preforch.serving.server.served import Served

HELLO = [{"role": "user", "content": "Say hello"}]


@contextmanager
def running(app):
    """`app` under uvicorn on a free loopback port, in a thread: yields (base url, server)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    assert server.started, "server did not start"
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def served(tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir) -> Served:
    return load_served(ServeConfig(policy=tiny_policy_dir, ensemble=tiny_ensemble_dir, orchestrator=tiny_orchestrator_dir,
                                   num_candidates=2, model_name="tiny"))


@pytest.fixture(scope="module")
def client(served):
    from fastapi.testclient import TestClient

    with TestClient(create_app(served, Limits(max_prompt_chars=200, max_tokens=8, max_n=2))) as c:
        yield c


def test_the_openai_client_works_unchanged_and_sees_a_partial_preference(served):
    from openai import OpenAI

    with running(create_app(served)) as (url, _):
        api = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in api.models.list().data] == ["tiny"]
        reply = api.chat.completions.create(model="tiny", messages=HELLO, max_tokens=4, n=2, seed=3,
                                            extra_body={"preference": {"harmless": 0.5, "auto": True}})
    assert len(reply.choices) == 2 and all(isinstance(c.message.content, str) for c in reply.choices)
    weights = reply.model_extra["preference"]
    assert list(weights) == ["helpful", "harmless", "conciseness"]
    assert weights["harmless"] == pytest.approx(0.5) and sum(weights.values()) == pytest.approx(1, abs=1e-5)
    assert all(set(c.model_extra["scores"]) == set(weights) for c in reply.choices)


def test_without_a_preference_the_orchestrator_chooses_weights_on_the_simplex(client):
    r = client.post("/v1/chat/completions", json={"messages": HELLO, "max_tokens": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert sum(body["preference"].values()) == pytest.approx(1, abs=1e-5)
    assert all(w > 0 for w in body["preference"].values())
    assert client.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize("preference, field", [
    ({"kindness": 1.0}, "unknown objective 'kindness'"),
    ({"helpful": 0.7, "harmless": 0.2}, "sum to 1"),
    ({"helpful": -0.5, "harmless": 1.5}, "non-negative"),
    ({"helpful": "lots"}, "preference.helpful: expected a finite number"),
    ({"helpful": 1.0, "auto": "yes"}, "preference.auto"),
])
def test_a_bad_preference_is_400_naming_the_field(client, preference, field):
    r = client.post("/v1/chat/completions", json={"messages": HELLO, "preference": preference})
    assert r.status_code == 400 and field in r.json()["error"]["message"]
    assert r.json()["error"]["message"].startswith("preference")


def test_malformed_json_is_400_naming_the_body(client):
    r = client.post("/v1/chat/completions", content='{"messages": [', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "body: invalid JSON at character 14"


def test_a_nan_weight_is_400(client):
    body = '{"messages": [{"role": "user", "content": "hi"}], "preference": {"helpful": NaN, "harmless": 1}}'
    r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "preference.helpful" in r.json()["error"]["message"]


@pytest.mark.parametrize("request_body, status, message", [
    ({"messages": [{"role": "user", "content": "x" * 201}]}, 413, "messages: prompt is 201 characters"),
    ({"messages": HELLO, "max_tokens": 9}, 400, "max_tokens: 9 is over"),
    ({"messages": HELLO, "n": 3}, 400, "n: 3 replies is over"),
    ({"messages": HELLO, "temperature": -1}, 400, "temperature"),
    ({"messages": [{"role": "user"}]}, 400, "messages.0.content"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages: message 0 has unknown role 'robot'"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, 400, "end with a user turn"),
    ({}, 400, "messages"),
])
def test_request_limits_and_malformed_requests(client, request_body, status, message):
    r = client.post("/v1/chat/completions", json=request_body)
    assert r.status_code == status and message in r.json()["error"]["message"], r.text


def test_a_lone_surrogate_is_400_naming_the_field(client):
    """JSON may escape a lone surrogate ("\\ud800"), which no tokenizer can encode: refused before it queues."""
    body = b'{"messages": [{"role": "user", "content": "hi \\ud800"}]}'
    r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("messages.0.content: invalid Unicode"), r.text


class Gated(PreferencePolicy):
    """Answers "ok" once `gate` opens; records the prompts of each generation call."""

    kind, Settings, shares_candidates = "gated", None, True

    def __init__(self, objectives=("helpful", "harmless")):
        self.gate, self.busy, self.calls, self._objectives = threading.Event(), threading.Event(), [], tuple(objectives)

    @property
    def objectives(self):
        return self._objectives

    def candidates(self, prompts, weightings, sampling):
        self.busy.set()
        assert self.gate.wait(20)
        self.calls.append(len(prompts))
        return [["ok"] * sampling.num_candidates for _ in prompts]


def post_in_thread(url: str, body: dict, results: list) -> threading.Thread:
    t = threading.Thread(target=lambda: results.append(httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)))
    t.start()
    return t


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def test_waiting_requests_share_one_generation_call_and_a_full_queue_answers_503():
    policy = Gated()
    app = create_app(Served(policy), queue_size=3, max_batch=8)
    fixed = {"messages": HELLO, "preference": {"helpful": 0.5, "harmless": 0.5}, "max_tokens": 2}
    with running(app) as (url, _):
        results = []
        threads = [post_in_thread(url, fixed, results)]
        wait_for(policy.busy.is_set)  # the first request is being answered, the queue is empty
        threads += [post_in_thread(url, fixed, results) for _ in range(3)]
        wait_for(lambda: httpx.get(f"{url}/health").json()["waiting"] == 3)
        full = httpx.post(f"{url}/v1/chat/completions", json=fixed)
        policy.gate.set()
        for t in threads:
            t.join(30)
    assert full.status_code == 503 and full.headers["Retry-After"] == "1" and "busy" in full.json()["error"]["message"]
    assert [r.status_code for r in results] == [200] * 4
    assert policy.calls == [1, 3]  # the three that waited were answered by one call


class Poisoned(Gated):
    """As Gated, but a batch holding a prompt with "poison" cannot be answered at all."""

    def candidates(self, prompts, weightings, sampling):
        if any("poison" in p[-1]["content"] for p in prompts):
            raise ConfigError("this prompt cannot be answered")
        return super().candidates(prompts, weightings, sampling)


def test_a_request_that_cannot_be_answered_fails_alone_and_its_batch_neighbours_are_answered():
    policy = Poisoned()
    app = create_app(Served(policy), queue_size=8, max_batch=8)
    good = {"messages": HELLO, "preference": {"helpful": 0.5, "harmless": 0.5}, "max_tokens": 2}
    poison = {**good, "messages": [{"role": "user", "content": "poison"}]}
    with running(app) as (url, _):
        results = []
        threads = [post_in_thread(url, good, results)]
        wait_for(policy.busy.is_set)  # the next five wait, then share one batch
        threads += [post_in_thread(url, body, results) for body in (good, good, poison, good, good)]
        wait_for(lambda: httpx.get(f"{url}/health").json()["waiting"] == 5)
        policy.gate.set()
        for t in threads:
            t.join(30)
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 5 + [400], [r.text for r in results]
    assert policy.calls == [1, 1, 1, 1, 1]  # the failed batch of five, answered request by request


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_stopping_the_server_mid_request_finishes_it_and_writes_nothing(tiny_ensemble_dir, tiny_orchestrator_dir,
                                                                         tmp_path, monkeypatch):
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble

    monkeypatch.chdir(tmp_path)
    folders = [Path(tiny_ensemble_dir), Path(tiny_orchestrator_dir)]
    before = [tree(f) for f in folders]
    ensemble = RewardEnsemble.load(tiny_ensemble_dir)
    policy = Gated(ensemble.objectives)
    served = Served(policy, ensemble, PreferenceOrchestrator.from_pretrained(tiny_orchestrator_dir))
    results = []
    with running(create_app(served)) as (url, server):
        thread = post_in_thread(url, {"messages": HELLO, "max_tokens": 2}, results)
        wait_for(policy.busy.is_set)
        server.should_exit = True  # what Ctrl-C / SIGTERM does
        time.sleep(0.2)
        policy.gate.set()
        thread.join(30)
    assert results[0].status_code == 200 and json.loads(results[0].text)["choices"][0]["message"]["content"] == "ok"
    assert [tree(f) for f in folders] == before and not list(tmp_path.iterdir())
