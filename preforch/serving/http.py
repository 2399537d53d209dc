"""`preforch serve`: any preference policy behind an OpenAI-compatible HTTP endpoint (FastAPI + uvicorn).

- POST /v1/chat/completions: the OpenAI request plus an optional `preference` (serving/api_schema.py); with
  none the orchestrator chooses per prompt. The reply adds `preference` (the weights used) and, with an
  ensemble, each choice's normalised `scores`.
- GET /v1/models, GET /health.
Requests are batched into one `respond` call per group of equal sampling settings (serving/batcher.py).
The server writes no files: stopping it at any moment leaves every folder it read as it was.
"""

from __future__ import annotations

import random
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import torch

from preforch.alignment.best_of_n import SamplingConfig
from preforch.data.weights import AUTO
from preforch.errors import ConfigError, PreforchError
from preforch.orchestrator.preference import preference_weights
from preforch.serving.api_schema import (ChatRequest, Limits, TooLarge, checked_prompt, completion_response,
                                         new_tokens, preference_spec)
from preforch.serving.batcher import Batcher, Job, QueueFull
from preforch.serving.policy import PreferencePolicy

if TYPE_CHECKING:
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble

RETRY_AFTER_S = 1


@dataclass
class Served:
    """What the server answers with: a policy, and optionally the orchestrator that supplies weights and the
    ensemble that scores replies. `name` is the model id /v1/models lists."""

    policy: PreferencePolicy
    ensemble: Optional["RewardEnsemble"] = None
    orchestrator: Optional["PreferenceOrchestrator"] = None
    name: str = "preforch"
    batch_size: int = 8

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.policy.objectives)

    def answer(self, jobs: Sequence[Job]) -> list[dict]:
        """One generation call for `jobs` (equal sampling): per job its weights [K], replies [n] and, with an
        ensemble, scores [n][K]. Blocking; run in a worker thread."""
        n, max_new_tokens, temperature, top_p, seed = jobs[0].sampling
        sampling = SamplingConfig(n, max_new_tokens, temperature, top_p, self.batch_size,
                                  random.randrange(2**31) if seed is None else seed)
        prompts = [j.prompt for j in jobs]
        weights = torch.empty(len(jobs), len(self.objectives))  # [P, K]
        for spec in dict.fromkeys(j.preference for j in jobs):  # one orchestrator call per distinct preference
            rows = [i for i, j in enumerate(jobs) if j.preference == spec]
            weights[rows] = preference_weights(spec, [prompts[i] for i in rows], self.objectives, self.orchestrator)
        replies = self.policy.respond(prompts, weights, sampling)  # [P][n]
        scores = None
        if self.ensemble is not None:
            flat = [(p, r) for p, row in zip(prompts, replies) for r in row]
            scores = self.ensemble.score([p for p, _ in flat], [r for _, r in flat]).view(len(jobs), n, -1).tolist()
            self.ensemble.clear_cache()  # a server sees new replies forever: keep its memory bounded
        return [{"weights": w.tolist(), "replies": row, "scores": None if scores is None else scores[i]}
                for i, (w, row) in enumerate(zip(weights, replies))]


def create_app(served: Served, limits: Limits = Limits(), queue_size: int = 64, max_batch: int = 8):
    """The FastAPI app serving `served`; requests beyond `queue_size` waiting answer 503 with Retry-After."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

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
        field = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        return error(400, f"{field}: {first['msg']}", "invalid_request_error")

    @app.get("/health")
    async def health():
        return {"status": "ok", "kind": served.policy.kind, "objectives": list(served.objectives),
                "orchestrator": served.orchestrator is not None, "ensemble": served.ensemble is not None,
                "waiting": batcher.waiting, "batches": batcher.batches}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served.name, "object": "model", "created": 0, "owned_by": "preforch",
                                            "kind": served.policy.kind, "objectives": list(served.objectives)}]}

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest):
        try:
            prompt = checked_prompt(request, limits)
            spec = preference_spec(request.preference, served.objectives)
            if (spec is None or AUTO in spec.split(",")) and served.orchestrator is None:
                raise ConfigError("preference: this server has no orchestrator; give every objective's weight "
                                  f"({', '.join(served.objectives)})")
            sampling = SamplingConfig(request.n, new_tokens(request, limits), request.temperature, request.top_p)
            served.policy.check_sampling(sampling)
            key = (request.n, sampling.max_new_tokens, request.temperature, request.top_p, request.seed)
            result = await batcher.submit(Job(prompt, spec, key))
        except TooLarge as e:
            return error(413, str(e), "invalid_request_error")
        except PreforchError as e:
            return error(400, str(e), "invalid_request_error")
        except QueueFull:
            return error(503, f"server busy: {queue_size} requests already wait; retry in {RETRY_AFTER_S} s",
                         "server_busy", {"Retry-After": str(RETRY_AFTER_S)})
        return completion_response(request.model or served.name, result["replies"], result["weights"],
                                   served.objectives, result["scores"])

    return app
