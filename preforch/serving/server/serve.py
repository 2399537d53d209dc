"""`preforch serve` from a `ServeConfig`: load the policy, ensemble and orchestrator, then run uvicorn."""

from __future__ import annotations

import os

import torch

from preforch.data.weights import parse_preference
from preforch.errors import ConfigError
from preforch.generation.sampling import SamplingConfig
from preforch.models import load_pretrained, resolve
from preforch.rewards.ensemble import RewardEnsemble, check_objectives
from preforch.serving.backends.vllm_lm import check_vllm
from preforch.serving.config import ServeConfig
from preforch.serving.policies.folder import load_preference_policy
from preforch.serving.policies.kinds import DEFAULT_KIND
from preforch.serving.policies.policy import LoadOptions
from preforch.serving.server.api_schema import Limits
from preforch.serving.server.http import create_app
from preforch.serving.server.prompt_text import TemplateReader
from preforch.serving.server.served import Served

GRACEFUL_SHUTDOWN_S = 30  # a request being generated when the server is stopped gets this long to finish


def load_served(cfg: ServeConfig) -> Served:
    """The policy `cfg.policy` as `cfg.method` (best-of-n for a bare model when there is an ensemble, else
    plain), with the ensemble and orchestrator if given ('' or None: none). Objectives come from the ensemble,
    else the orchestrator, else the policy folder; the parts must agree (`ObjectiveMismatchError`). Answers one
    short prompt before returning, so a model that does not load fails here, not at the first request."""
    from preforch.orchestrator.model import PreferenceOrchestrator

    if cfg.backend == "vllm":  # before any model loads
        check_vllm()
    ensemble = RewardEnsemble.load(cfg.ensemble) if cfg.ensemble else None
    orchestrator = PreferenceOrchestrator.from_pretrained(cfg.orchestrator) if cfg.orchestrator else None
    objectives = ensemble.objectives if ensemble else orchestrator.objectives if orchestrator else None
    if orchestrator is not None:
        check_objectives(objectives, orchestrator.objectives, f"orchestrator {cfg.orchestrator}")
    policy = None if cfg.reward_only else load_preference_policy(
        cfg.policy, cfg.method, default_kind=DEFAULT_KIND if ensemble else "plain", objectives=objectives,
        ensemble=cfg.ensemble or None, num_candidates=cfg.num_candidates,
        options=LoadOptions(cfg.trust_remote_code, {cfg.ensemble: ensemble} if ensemble else {}, backend=cfg.backend,
                            cache_size=cfg.cache_size))
    if cfg.weights:  # a bad default fails at start, not at the first request
        partial = parse_preference(cfg.weights, objectives or policy.objectives, "--weights")
        if partial.auto and orchestrator is None:
            raise ConfigError(f"--weights {cfg.weights}: 'auto' fills from the orchestrator; add --orchestrator DIR")
    served = Served(policy, ensemble, orchestrator, cfg.model_name, cfg.max_batch, cfg.weights or None,
                    cfg.api_key or os.environ.get("PREFORCH_API_KEY") or None, template_reader(cfg, policy), cfg.cache_size)
    if policy is not None:
        k = len(served.objectives)
        policy.respond([({"role": "user", "content": "Hello"},)], torch.full((1, k), 1 / k), SamplingConfig(1, 1, 1.0, 1.0))
    return served


def template_reader(cfg: ServeConfig, policy) -> TemplateReader:
    """What reads formatted prompt texts back into messages: --tokenizer's chat template, else the policy's, else
    none (each text one user message)."""
    if cfg.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = load_pretrained(AutoTokenizer, resolve(cfg.tokenizer), "--tokenizer",
                                    trust_remote_code=cfg.trust_remote_code)
    else:
        tokenizer = policy.tokenizer() if policy is not None else None
    return TemplateReader.from_tokenizer(tokenizer) if tokenizer is not None else TemplateReader()


def run_server(served: Served, cfg: ServeConfig) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM: in-flight requests finish first, up to GRACEFUL_SHUTDOWN_S)."""
    import uvicorn

    app = create_app(served, Limits(cfg.max_prompt_chars, cfg.max_tokens, cfg.max_n, cfg.max_score_items), cfg.queue_size,
                     cfg.max_batch)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
