"""`preforch serve`: any preference policy behind an OpenAI-compatible HTTP endpoint (FastAPI + uvicorn).

- POST /v1/chat/completions: the OpenAI request plus an optional `preference` (serving/api_schema.py); the
  preference may also ride in the model name (`preforch:helpful=0.8,harmless=0.2`), else the server's default
  (`serve --weights`), else the orchestrator chooses per prompt. The reply adds `preference` (the weights used)
  and, with an ensemble, each choice's normalised `scores`; `usage` counts tokens; `stream: true` sends the
  chosen replies as server-sent events.
- POST /v1/completions: plain prompts, answered as a user message.
- POST /v1/score: a batch of (messages, reply) -> each objective's normalised score, the weights, and the
  combined reward `w . r~`: a remote reward model for RL frameworks.
- GET / : the playground (playground.html): a prompt, the orchestrator's weights as bars, sliders, the candidates
  with their scores and the one chosen, over POST /v1/explain.
- GET /v1/models, GET /health. With `--api_key`, every /v1 route wants `Authorization: Bearer KEY` (401 without).
Generation requests are batched into one `respond` call per group of equal sampling settings
(serving/batcher.py). The server writes no files: stopping it at any moment leaves every folder it read as it was.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import torch

from preforch.alignment.best_of_n import SamplingConfig, combined_reward
from preforch.data.weights import AUTO
from preforch.errors import ConfigError, PreforchError
from preforch.orchestrator.preference import preference_weights
from preforch.serving.api_schema import (ChatMessage, ChatRequest, CompletionRequest, Limits, ScoreRequest, TooLarge,
                                         checked_messages, checked_prompt, chosen_preference, completion_response,
                                         new_tokens, stream_chunks, usage)
from preforch.serving.batcher import Batcher, Job, QueueFull
from preforch.serving.policy import PreferencePolicy

if TYPE_CHECKING:
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble

RETRY_AFTER_S = 1
PLAYGROUND = Path(__file__).with_name("playground.html")


@dataclass
class Served:
    """What the server answers with: a policy, and optionally the orchestrator that supplies weights and the
    ensemble that scores replies. `name` is the model id /v1/models lists; `default_preference` a `--weights`
    spec for requests that give none; `api_key` the bearer token /v1 routes want (None: open)."""

    policy: PreferencePolicy
    ensemble: Optional["RewardEnsemble"] = None
    orchestrator: Optional["PreferenceOrchestrator"] = None
    name: str = "preforch"
    batch_size: int = 8
    default_preference: Optional[str] = None
    api_key: Optional[str] = None
    # generation, /v1/score and /v1/explain run in different worker threads; the models (and the ensemble's cache)
    # serve one of them at a time
    _models: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.policy.objectives)

    def weights(self, prompts: Sequence, specs: Sequence[Optional[str]]) -> torch.Tensor:
        """Each prompt's weights [P, K] under its spec (None: the orchestrator's); one call per distinct spec."""
        weights = torch.empty(len(prompts), len(self.objectives))
        for spec in dict.fromkeys(specs):
            rows = [i for i, s in enumerate(specs) if s == spec]
            weights[rows] = preference_weights(spec, [prompts[i] for i in rows], self.objectives, self.orchestrator)
        return weights

    def scores(self, prompts: Sequence, replies: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw [B, K], normalised [B, K]) ensemble scores, the cache emptied after: a server sees new replies
        forever, so its memory stays bounded."""
        with self._models:
            raw = self.ensemble.score_raw(list(prompts), list(replies))
            self.ensemble.clear_cache()
        return raw, self.ensemble.normalize(raw)

    def token_count(self, text_or_prompt) -> Optional[int]:
        """Tokens of a reply (str) or of a chat prompt as the model reads it; None when the kind has no tokenizer."""
        tok = self.policy.tokenizer()
        if tok is None:
            return None
        if isinstance(text_or_prompt, str):
            return len(tok(text_or_prompt, add_special_tokens=False)["input_ids"])
        return len(tok.apply_chat_template(list(text_or_prompt), add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"])

    def answer(self, jobs: Sequence[Job]) -> list[dict]:
        """One generation call for `jobs` (equal sampling): per job its weights [K], replies [n], with an
        ensemble scores [n][K], and token usage. Blocking; run in a worker thread."""
        n, max_new_tokens, temperature, top_p, seed = jobs[0].sampling
        sampling = SamplingConfig(n, max_new_tokens, temperature, top_p, self.batch_size,
                                  random.randrange(2**31) if seed is None else seed)
        prompts = [j.prompt for j in jobs]
        with self._models:
            weights = self.weights(prompts, [j.preference for j in jobs])
            replies = self.policy.respond(prompts, weights, sampling)  # [P][n]
        scores = None
        if self.ensemble is not None:
            flat = [(p, r) for p, row in zip(prompts, replies) for r in row]
            scores = self.scores([p for p, _ in flat], [r for _, r in flat])[1].view(len(jobs), n, -1).tolist()
        out = []
        for i, (p, w, row) in enumerate(zip(prompts, weights, replies)):
            asked = self.token_count(p)
            counted = None if asked is None else usage(asked, sum(self.token_count(r) for r in row))
            out.append({"weights": w.tolist(), "replies": row, "scores": None if scores is None else scores[i],
                        "usage": counted})
        return out

    def explain(self, prompt, spec: Optional[str], sampling: SamplingConfig) -> dict:
        """What the playground shows for one prompt: the weights used (and the orchestrator's own), the policy's
        candidates with each objective's normalised score and the combined reward under those weights, and which
        candidate the policy chose. Blocking; run in a worker thread."""
        with self._models:
            weights = self.weights([prompt], [spec])  # [1, K]
            own = self.weights([prompt], [None])[0].tolist() if self.orchestrator is not None else None
            candidates = self.policy.candidates([prompt], [weights], sampling)[0]  # [n]: one weighting, one prompt
            chosen = self.policy.select([prompt], [candidates], [weights], sampling)[0][0][0]
            scores = self.scores([prompt] * len(candidates), candidates)[1] if self.ensemble is not None else None
        named = lambda row: dict(zip(self.objectives, map(float, row)))
        return {"objectives": list(self.objectives), "weights": named(weights[0]),
                "orchestrator_weights": own and named(own), "kind": self.policy.kind,
                "chosen": candidates.index(chosen) if chosen in candidates else None,
                "candidates": [{"text": text, "scores": None if scores is None else named(scores[i]),
                                "combined": None if scores is None else float(combined_reward(scores[i], weights[0]))}
                               for i, text in enumerate(candidates)]}

    def score(self, prompts: Sequence, replies: Sequence[str], specs: Sequence[Optional[str]]) -> list[dict]:
        """/v1/score: per (prompt, reply) its raw and normalised scores, the weights of its spec and the combined
        reward w . r~ (paper Eq. 9). Blocking; run in a worker thread."""
        with self._models:
            raw, normalized = self.scores(prompts, replies)
            weights = self.weights(prompts, specs)
        reward = combined_reward(normalized, weights)
        named = lambda row: dict(zip(self.objectives, map(float, row)))
        return [{"index": i, "scores": named(normalized[i]), "raw_scores": named(raw[i]), "weights": named(weights[i]),
                 "reward": float(reward[i])} for i in range(len(replies))]


def create_app(served: Served, limits: Limits = Limits(), queue_size: int = 64, max_batch: int = 8):
    """The FastAPI app serving `served`; requests beyond `queue_size` waiting answer 503 with Retry-After."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

    batcher = Batcher(served.answer, queue_size, max_batch)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="preforch", lifespan=lifespan)
    app.state.batcher = batcher

    def error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first["type"] == "json_invalid":  # its loc is the character position, not a field
            return error(400, f"body: invalid JSON at character {first['loc'][-1]}", "invalid_request_error")
        field = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        return error(400, f"{field}: {first['msg']}", "invalid_request_error")

    @app.middleware("http")
    async def authorize(request: Request, call_next):
        if served.api_key and request.url.path.startswith("/v1/"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {served.api_key}".encode()):
                return error(401, "Authorization: this server wants 'Bearer <api key>' (serve --api_key)",
                             "invalid_api_key")
        return await call_next(request)

    def preference_of(preference, model) -> Optional[str]:
        spec = chosen_preference(preference, model, served.name, served.default_preference, served.objectives)
        if (spec is None or AUTO in spec.split(",")) and served.orchestrator is None:
            raise ConfigError("preference: this server has no orchestrator; give every objective's weight "
                              f"({', '.join(served.objectives)})")
        return spec

    async def answered(coroutine):
        """The result of a request's handling, or the OpenAI-shaped error it raised."""
        try:
            return await coroutine
        except TooLarge as e:
            return error(413, str(e), "invalid_request_error")
        except PreforchError as e:
            return error(400, str(e), "invalid_request_error")
        except QueueFull:
            return error(503, f"server busy: {queue_size} requests already wait; retry in {RETRY_AFTER_S} s",
                         "server_busy", {"Retry-After": str(RETRY_AFTER_S)})

    def sampling_key(n: int, max_tokens: int, temperature: float, top_p: float, seed) -> tuple:
        served.policy.check_sampling(SamplingConfig(n, max_tokens, temperature, top_p))
        return n, max_tokens, temperature, top_p, seed

    @app.get("/", response_class=HTMLResponse)
    async def playground():
        return PLAYGROUND.read_text(encoding="utf-8")

    @app.post("/v1/explain")
    async def explain(request: ChatRequest):
        async def handle():
            prompt = checked_prompt(request, limits)
            sampling = SamplingConfig(request.n, new_tokens(request, limits), request.temperature, request.top_p,
                                      served.batch_size, 0 if request.seed is None else request.seed)
            served.policy.check_sampling(sampling)
            return await run_in_threadpool(served.explain, prompt, preference_of(request.preference, request.model),
                                           sampling)
        return await answered(handle())

    @app.get("/health")
    async def health():
        return {"status": "ok", "kind": served.policy.kind, "objectives": list(served.objectives),
                "orchestrator": served.orchestrator is not None, "ensemble": served.ensemble is not None,
                "default_preference": served.default_preference, "waiting": batcher.waiting, "batches": batcher.batches}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served.name, "object": "model", "created": 0, "owned_by": "preforch",
                                            "kind": served.policy.kind, "objectives": list(served.objectives)}]}

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest):
        async def handle():
            prompt = checked_prompt(request, limits)
            key = sampling_key(request.n, new_tokens(request, limits), request.temperature, request.top_p, request.seed)
            result = await batcher.submit(Job(prompt, preference_of(request.preference, request.model), key))
            response = completion_response(request.model or served.name, result["replies"], result["weights"],
                                           served.objectives, result["scores"], result["usage"])
            if not request.stream:
                return response
            include_usage = bool((request.stream_options or {}).get("include_usage"))
            return StreamingResponse(iter(stream_chunks(response, include_usage)), media_type="text/event-stream")
        return await answered(handle())

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest):
        async def handle():
            if request.stream:
                raise ConfigError("stream: /v1/completions answers whole; stream from /v1/chat/completions")
            if request.max_tokens > limits.max_tokens or request.n > limits.max_n:
                raise ConfigError(f"max_tokens / n: over this server's limits ({limits.max_tokens} / {limits.max_n})")
            if not request.prompts():
                raise ConfigError("prompt: give at least one prompt")
            spec = preference_of(request.preference, request.model)
            key = sampling_key(request.n, request.max_tokens, request.temperature, request.top_p, request.seed)
            prompts = [checked_messages_of(text, limits) for text in request.prompts()]
            results = await asyncio.gather(*(batcher.submit(Job(p, spec, key)) for p in prompts))
            choices = [{"index": i * request.n + j, "text": reply, "finish_reason": "stop", "logprobs": None,
                        "preference": dict(zip(served.objectives, r["weights"]))}
                       for i, r in enumerate(results) for j, reply in enumerate(r["replies"])]
            counted = [r["usage"] for r in results]
            return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                    "model": request.model or served.name, "choices": choices,
                    **({"usage": usage(sum(u["prompt_tokens"] for u in counted), sum(u["completion_tokens"] for u in counted))}
                       if all(counted) else {})}
        return await answered(handle())

    @app.post("/v1/score")
    async def score(request: ScoreRequest):
        async def handle():
            if served.ensemble is None:
                raise ConfigError("this server has no reward ensemble to score with (serve --ensemble DIR)")
            if len(request.items) > limits.max_score_items:
                raise ConfigError(f"items: {len(request.items)} is over this server's limit of {limits.max_score_items}")
            prompts = [checked_messages(item.messages, limits, f"items.{i}.messages") for i, item in enumerate(request.items)]
            for i, item in enumerate(request.items):
                if len(item.reply) > limits.max_prompt_chars:
                    raise TooLarge(f"items.{i}.reply: {len(item.reply)} characters, over this server's limit of "
                                   f"{limits.max_prompt_chars}")
            specs = [preference_of(item.preference if item.preference is not None else request.preference, request.model)
                     for item in request.items]
            data = await run_in_threadpool(served.score, prompts, [item.reply for item in request.items], specs)
            return {"object": "list", "model": request.model or served.name, "objectives": list(served.objectives),
                    "data": data}
        return await answered(handle())

    return app


def checked_messages_of(text: str, limits: Limits) -> tuple[dict, ...]:
    """A plain prompt as the one user message of a chat prompt, within the character limit."""
    return checked_messages([ChatMessage(role="user", content=text)], limits, "prompt")
