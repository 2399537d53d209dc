"""`preforch serve`: any preference policy behind an OpenAI-compatible HTTP endpoint (FastAPI + uvicorn).

- POST /v1/chat/completions: the OpenAI request plus an optional `preference` (serving/server/api_schema.py); the
  preference may also ride in the model name (`preforch:helpful=0.8,harmless=0.2`), else the server's default
  (`serve --weights`), else the orchestrator chooses per prompt. The reply adds `preference` (the weights used)
  and, with an ensemble, each choice's normalised `scores`; `usage` counts tokens; `stream: true` sends the
  chosen replies as server-sent events.
- POST /v1/completions: plain prompts, answered as a user message, shaped like chat's replies.
  Both take `stop` (each reply cut at its first stop string, before it is scored); OpenAI fields not implemented
  here are refused by name (api_schema.UNSUPPORTED); every error status has OpenAI's error body.
- POST /v1/score: a batch of (messages, reply) -> each objective's normalised score, the weights, and the
  combined reward `w . r~`: a remote reward model for RL frameworks. Also answers vLLM's scoring request
  (`text_1` / `text_2`, here and at POST /score) with vLLM's response shape plus preforch's fields.
- POST /get_reward: OpenRLHF's remote reward protocol (`--remote_rm_url http://HOST:PORT/get_reward`): the
  combined reward of each query, per-objective scores and weights in `extra_logs`.
  Formatted prompt texts (these two routes) are read back into chat messages with the policy's chat template
  (serving/server/prompt_text.py; `serve --tokenizer` names it for a reward-only server).
- GET / : the playground (playground.html): a prompt, the orchestrator's weights as bars, sliders, the candidates
  with their scores and the one chosen, over POST /v1/explain.
- GET /v1/models, GET /health. With `--api_key`, every route but / and /health wants `Authorization: Bearer KEY`
  (401 without). `serve --reward_only` loads no policy: the scoring routes answer, the generating ones say so.
Generation requests are batched into one `respond` call per group of equal sampling settings
(serving/server/batcher.py). The server writes no files: stopping it at any moment leaves every folder it read as it was.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Optional

from preforch.data.weights import AUTO
from preforch.errors import ConfigError, PreforchError
from preforch.generation.sampling import SamplingConfig
from preforch.serving.server.api_schema import (ChatMessage, ChatRequest, CompletionRequest, Limits, RewardRequest,
                                                ScoreRequest, TextScoreRequest, TooLarge, by_objective, check_text,
                                                checked_messages, checked_prompt, chosen_preference,
                                                completion_response, extra_logs, new_tokens, refuse_unsupported,
                                                stop_strings, stream_chunks, usage)
from preforch.serving.server.batcher import Batcher, Job, QueueFull
from preforch.serving.server.prompt_text import split_query
from preforch.serving.server.served import Served

RETRY_AFTER_S = 1
OPEN_ROUTES = ("/", "/health")  # every other route wants the API key when the server has one
PLAYGROUND = Path(__file__).with_name("playground.html")


def create_app(served: Served, limits: Limits = Limits(), queue_size: int = 64, max_batch: int = 8):
    """The FastAPI app serving `served`; requests beyond `queue_size` waiting answer 503 with Retry-After."""
    from fastapi import Body, FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
    from pydantic import ValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):  # 404, 405, ...: OpenAI's error body too
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(exc.status_code, "api_error")
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind,
                     getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first["type"] == "json_invalid":  # its loc is the character position, not a field
            return error(400, f"body: invalid JSON at character {first['loc'][-1]}", "invalid_request_error")
        field = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        return error(400, f"{field}: {first['msg']}", "invalid_request_error")

    @app.middleware("http")
    async def authorize(request: Request, call_next):
        if served.api_key and request.url.path not in OPEN_ROUTES:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), served.api_key.encode()):
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

    def generating() -> None:
        if served.policy is None:
            raise ConfigError("this server serves rewards only (serve --reward_only): POST /v1/score or /get_reward")

    def sampling_key(n: int, max_tokens: int, temperature: float, top_p: float, seed, stop) -> tuple:
        generating()
        served.policy.check_sampling(SamplingConfig(n, max_tokens, temperature, top_p))
        return n, max_tokens, temperature, top_p, seed, stop_strings(stop)

    @app.get("/", response_class=HTMLResponse)
    async def playground():
        return PLAYGROUND.read_text(encoding="utf-8")

    @app.post("/v1/explain")
    async def explain(request: ChatRequest):
        async def handle():
            generating()
            prompt = checked_prompt(request, limits)
            sampling = SamplingConfig(request.n, new_tokens(request, limits), request.temperature, request.top_p,
                                      served.batch_size, 0 if request.seed is None else request.seed)
            served.policy.check_sampling(sampling)
            return await run_in_threadpool(served.explain, prompt, preference_of(request.preference, request.model),
                                           sampling)
        return await answered(handle())

    @app.get("/health")
    async def health():
        return {"status": "ok", "kind": served.kind, "objectives": list(served.objectives),
                "orchestrator": served.orchestrator is not None, "ensemble": served.ensemble is not None,
                "default_preference": served.default_preference, "waiting": batcher.waiting, "batches": batcher.batches,
                "cached": served.cached()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served.name, "object": "model", "created": 0, "owned_by": "preforch",
                                            "kind": served.kind, "objectives": list(served.objectives)}]}

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest):
        async def handle():
            prompt = checked_prompt(request, limits)
            key = sampling_key(request.n, new_tokens(request, limits), request.temperature, request.top_p, request.seed,
                               request.stop)
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
            refuse_unsupported(request)
            if request.stream:
                raise ConfigError("stream: /v1/completions answers whole; stream from /v1/chat/completions")
            if request.max_tokens > limits.max_tokens or request.n > limits.max_n:
                raise ConfigError(f"max_tokens / n: over this server's limits ({limits.max_tokens} / {limits.max_n})")
            if not request.prompts():
                raise ConfigError("prompt: give at least one prompt")
            spec = preference_of(request.preference, request.model)
            key = sampling_key(request.n, request.max_tokens, request.temperature, request.top_p, request.seed,
                               request.stop)
            prompts = [checked_messages_of(text, limits) for text in request.prompts()]
            results = await asyncio.gather(*(batcher.submit(Job(p, spec, key)) for p in prompts))
            choices = [{"index": i * request.n + j, "text": reply, "finish_reason": "stop", "logprobs": None,
                        **({"scores": by_objective(served.objectives, r["scores"][j])} if r["scores"] is not None else {})}
                       for i, r in enumerate(results) for j, reply in enumerate(r["replies"])]
            weights = [dict(zip(served.objectives, map(float, r["weights"]))) for r in results]
            counted = [r["usage"] for r in results]
            return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                    "model": request.model or served.name, "choices": choices,
                    "preference": weights[0] if len(weights) == 1 else weights,  # chat's shape; a list for several prompts
                    **({"usage": usage(sum(u["prompt_tokens"] for u in counted), sum(u["completion_tokens"] for u in counted))}
                       if all(counted) else {})}
        return await answered(handle())

    def scoring_batch(n: int, field: str) -> None:
        if served.ensemble is None:
            raise ConfigError("this server has no reward ensemble to score with (serve --ensemble DIR)")
        if n > limits.max_score_items:
            raise ConfigError(f"{field}: {n} is over this server's limit of {limits.max_score_items}")

    async def scored(prompts: list, replies: list[str], preferences: list, model: Optional[str], field: str,
                     preference_fields: Optional[list[str]] = None) -> list[dict]:
        """served.score over (prompt messages, reply) pairs, each under its preference (None: the server's
        default), replies within the character limit (`field`: where reply i is, with {} for i; a bad preference i
        is named with preference_fields[i] before it)."""
        for i, reply in enumerate(replies):
            check_text(reply, field.format(i))
            if len(reply) > limits.max_prompt_chars:
                raise TooLarge(f"{field.format(i)}: {len(reply)} characters, over this server's limit of "
                               f"{limits.max_prompt_chars}")
        specs = []
        for i, preference in enumerate(preferences):
            try:
                specs.append(preference_of(preference, model))
            except PreforchError as e:
                raise type(e)(f"{preference_fields[i] if preference_fields else ''}{e}") from None
        return await run_in_threadpool(served.score, prompts, replies, specs)

    def read_prompt(text: str, field: str) -> tuple[dict, ...]:
        """A formatted prompt text as chat messages (served.reader), checked like a chat request's."""
        return checked_messages([ChatMessage(**m) for m in served.reader.messages(text)], limits, field)

    def validated(model, body: dict):
        try:
            return model.model_validate(body)
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from None

    @app.post("/v1/score")
    @app.post("/score")
    async def score(body: dict[str, Any] = Body(...)):
        async def handle():
            if "text_1" in body or "text_2" in body:  # vLLM's scoring request
                request = validated(TextScoreRequest, body)
                pairs = request.pairs()
                scoring_batch(len(pairs), "text_2")
                prompts = [read_prompt(text, f"text_1.{i}") for i, (text, _) in enumerate(pairs)]
                data = await scored(prompts, [r for _, r in pairs], [request.preference] * len(pairs), request.model,
                                    "text_2.{}")
                return {"id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                        "model": request.model or served.name, "objectives": list(served.objectives),
                        "data": [{**d, "object": "score", "score": d["reward"]} for d in data]}
            request = validated(ScoreRequest, body)
            scoring_batch(len(request.items), "items")
            prompts = [checked_messages(item.messages, limits, f"items.{i}.messages") for i, item in enumerate(request.items)]
            data = await scored(prompts, [item.reply for item in request.items],
                                [item.preference if item.preference is not None else request.preference
                                 for item in request.items], request.model, "items.{}.reply",
                                [f"items.{i}." if item.preference is not None else "" for i, item in enumerate(request.items)])
            return {"object": "list", "model": request.model or served.name, "objectives": list(served.objectives),
                    "data": data}
        return await answered(handle())

    @app.post("/get_reward")
    async def get_reward(request: RewardRequest):
        """OpenRLHF's remote reward model (`--remote_rm_url http://HOST:PORT/get_reward`), answered as its own
        openrlhf/cli/serve_rm.py answers: {"rewards", "scores", "extra_logs"}."""
        async def handle():
            prompts = request.checked_prompts()
            scoring_batch(len(request.query), "query")
            split = [split_query(q, None if prompts is None else prompts[i], served.reader, f"query.{i}")
                     for i, q in enumerate(request.query)]
            messages = [read_prompt(text, f"prompts.{i}") for i, (text, _) in enumerate(split)]
            data = await scored(messages, [r for _, r in split], [request.preference] * len(split), None, "query.{}")
            rewards = [d["reward"] for d in data]
            return {"rewards": rewards, "scores": rewards, "extra_logs": extra_logs(data, served.objectives)}
        return await answered(handle())

    return app


def checked_messages_of(text: str, limits: Limits) -> tuple[dict, ...]:
    """A plain prompt as the one user message of a chat prompt, within the character limit."""
    return checked_messages([ChatMessage(role="user", content=text)], limits, "prompt")
