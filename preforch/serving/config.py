"""Configs of the serving stage: `generate`, `serve`, `train-value-head` (its PRM serves guided decoding)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from preforch.config import check_non_negative, check_one_of, check_positive, list_option, option
from preforch.data.arithmetic import LEVELS
from preforch.errors import ConfigError
from preforch.serving.policies.kinds import check_kind

METHOD_HELP = ("how the policy serves a preference, any kind in preforch/serving/policies/kinds.py: best-of-n "
               "(rerank N samples with --ensemble) | plain (ignores it) | wic (a train-wic policy reads it from its prompt) | soups (a "
               "train-experts folder: experts merged in weight space by w) | mod (a train-experts folder: experts' "
               "next-token log-probs mixed by w); default: the folder's own (its preference_policy.json; wic for a "
               "train-wic folder, soups for a train-experts folder), else best-of-n")
# Entries each of the server's caches keeps (the orchestrator's per prompt, the ensemble's per (prompt, reply)):
# a few hours of traffic at the 1-5 requests/s measured on 2 CPU cores (docs/benchmarks.md), some 100-200 MiB.
DEFAULT_CACHE_SIZE = 50_000
POLICY_HELP = "policy folder (see --method), causal LM hub id or local path, or bundled alias 'smollm2'"


def check_kind_field(field_name: str, kind: Optional[str]) -> None:
    """A preference-policy kind must be registered (None: the policy folder's own)."""
    if kind is not None:
        check_kind(kind, field_name)


@dataclass
class GenerateConfig:
    """`preforch generate`: answers under orchestrator or user weights, by default best-of-N reranked by
    sum_i w_i(x) r~_i(x, y)."""

    prompt: list[str] = list_option([], "prompt(s) to answer; or use --prompts_file")
    prompts_file: Optional[str] = option(None, "JSONL/CSV/JSON preference file or .txt (one prompt per line)")
    policy: str = option("smollm2", POLICY_HELP)
    method: Optional[str] = option(None, METHOD_HELP)
    ensemble: str = option("runs/quickstart/rewards", "reward ensemble folder")
    orchestrator: Optional[str] = option("runs/quickstart/orchestrator", "orchestrator folder (weights per prompt)")
    weights: Optional[str] = option(None, "fixed weights, e.g. helpful=0.7,harmless=0.3 (overrides the orchestrator); "
                                    "end with auto to let the orchestrator fill the objectives not named: harmless=0.5,auto")
    num_candidates: Optional[int] = option(None, "N in best-of-N (default: the policy folder's, else 4)")
    max_new_tokens: int = option(64, "tokens per candidate")
    temperature: float = option(0.8, "sampling temperature")
    top_p: float = option(0.95, "nucleus sampling")
    batch_size: int = option(8, "prompts per generation batch")
    seed: int = option(0, "random seed")
    output: Optional[str] = option(None, "write results as JSONL here")
    max_prompt_chars: int = option(8000, "longest prompt (characters over all messages), as serve's limit")
    trust_remote_code: bool = option(False, "allow custom model code from the hub")

    def __post_init__(self):
        check_positive(self, "num_candidates", "max_new_tokens", "batch_size", "max_prompt_chars")
        check_kind_field("method", self.method)


@dataclass
class ServeConfig:
    """`preforch serve`: a preference policy behind an OpenAI-compatible HTTP endpoint."""

    policy: str = option("smollm2", POLICY_HELP)
    method: Optional[str] = option(None, METHOD_HELP)
    ensemble: Optional[str] = option("runs/quickstart/rewards", "reward ensemble folder: reranks (best-of-n) and scores "
                                     "each reply; '' for none")
    orchestrator: Optional[str] = option("runs/quickstart/orchestrator", "orchestrator folder: weights when a request "
                                         "gives no preference (or a partial one); '' for none")
    host: str = option("127.0.0.1", "interface to listen on (0.0.0.0: every interface)")
    port: int = option(8000, "TCP port")
    model_name: str = option("preforch", "model id that /v1/models lists")
    num_candidates: Optional[int] = option(None, "N in best-of-N (default: the policy folder's, else 4)")
    max_batch: int = option(8, "requests answered by one generation call at most")
    queue_size: int = option(64, "requests that may wait; beyond, 503 with Retry-After")
    max_prompt_chars: int = option(8000, "longest prompt (characters over all messages); beyond, 413")
    max_tokens: int = option(512, "most new tokens a request may ask (also the default); beyond, 400")
    max_n: int = option(8, "most replies (n) a request may ask; beyond, 400")
    max_score_items: int = option(256, "most (messages, reply) items one /v1/score request may send; beyond, 400")
    cache_size: int = option(DEFAULT_CACHE_SIZE, "entries each cache keeps, the least recently used dropped first: the "
                             "orchestrator's weights per prompt, the ensemble's scores per (prompt, reply)")
    weights: Optional[str] = option(None, "default preference for requests that give none, e.g. helpful=0.7,harmless=0.3 "
                                    "or harmless=0.6,auto (the orchestrator fills the rest); default: the orchestrator's")
    api_key: Optional[str] = option(None, "require 'Authorization: Bearer KEY' on every /v1 route (401 otherwise); also "
                                    "read from $PREFORCH_API_KEY")
    backend: str = option("hf", "what samples candidates: hf (transformers generate) | vllm (needs vllm and a GPU; the plain, "
                          "best-of-n, wic and moslim kinds)")
    reward_only: bool = option(False, "load no policy: a remote reward model for RL frameworks (/get_reward, /v1/score); "
                               "needs --ensemble")
    tokenizer: Optional[str] = option(None, "tokenizer (hub id, path or alias) whose chat template formatted the prompt texts "
                                      "/get_reward and vLLM-style scoring receive, to read them back into messages; default: "
                                      "the policy's; with none, a prompt text is one user message")
    trust_remote_code: bool = option(False, "allow custom model code from the hub")

    def __post_init__(self):
        if self.reward_only and not self.ensemble:
            raise ConfigError("reward_only: a reward-only server needs --ensemble DIR")
        check_positive(self, "port", "num_candidates", "max_batch", "queue_size", "max_prompt_chars", "max_tokens", "max_n",
                       "max_score_items", "cache_size")
        check_one_of(self, "backend", ("hf", "vllm"))
        check_kind_field("method", self.method)
        if self.port > 65535:
            raise ConfigError(f"port: {self.port} is not a TCP port (1-65535)")


@dataclass
class ValueHeadConfig:
    """`preforch train-value-head`: the arithmetic objective's value head (a PRM for guided decoding), trained on
    hindsight labels of the policy's own samples."""

    policy: str = option("smollm2", "the policy whose continuations the value predicts (any preference policy: a "
                         "train-mahalo folder, a model id or path)")
    method: Optional[str] = option(None, METHOD_HELP)
    weights: Optional[str] = option(None, "weights the policy samples under, e.g. helpful=0,harmless=0,arithmetic=1 "
                                    "(default: uniform)")
    backbone: str = option("smollm2", "frozen causal LM whose last hidden state the head reads: hub id, path or alias")
    level: str = option("one-step", "arithmetic problems: one-step or two-step")
    problems: int = option(128, "training problems (seed SEED)")
    eval_problems: int = option(64, "held-out problems (seed SEED + 10000)")
    samples: int = option(8, "samples per problem (temperature 1)")
    max_new_tokens: int = option(48, "tokens per sample")
    boundary: str = option("sentence", "step boundary: 'paragraph', 'sentence' or a literal marker")
    weight_decay: Optional[float] = option(None, "L2 penalty of the logistic probe (on standardised features); default: "
                                           "chosen from 1e-4 .. 1 by 4-fold cross-validation over the training problems")
    output_dir: str = option("runs/value_head", "value_head.json + value_head.safetensors")
    seed: int = option(0, "random seed")
    trust_remote_code: bool = option(False, "allow custom model code from the hub")

    def __post_init__(self):
        check_positive(self, "problems", "eval_problems", "samples", "max_new_tokens")
        if self.weight_decay is not None:
            check_non_negative(self, "weight_decay")
        check_one_of(self, "level", tuple(LEVELS))
        check_kind_field("method", self.method)
        if not self.boundary:
            raise ConfigError("boundary: empty")
