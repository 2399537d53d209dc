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
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional

from preforch.data.weights import AUTO
from preforch.errors import ConfigError, PreforchError
from preforch.generation.sampling import SamplingConfig
from preforch.serving.api_schema import (ChatMessage, ChatRequest, CompletionRequest, Limits, ScoreRequest, TooLarge,
                                         checked_messages, checked_prompt, chosen_preference, completion_response,
                                         new_tokens, stream_chunks, usage)
from preforch.serving.batcher import Batcher, Job, QueueFull
from preforch.serving.served import Served

RETRY_AFTER_S = 1
PLAYGROUND = Path(__file__).with_name("playground.html")


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
