"""The wire format of `preforch serve`: OpenAI chat-completion requests and responses, plus `preference`.

A request is the OpenAI one (messages, max_tokens, temperature, top_p, n, seed) with an optional `preference`
object {objective: weight}; `"auto": true` in it lets the orchestrator fill the objectives not named (the
`--weights harmless=0.5,auto` of the CLI). Limits are checked here, before a request queues.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from preforch.data.schema import check_messages
from preforch.data.weights import AUTO, parse_preference
from preforch.errors import ConfigError, WeightsError


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: Union[str, list[dict[str, Any]]]

    def text(self) -> str:
        """The content as text; a list of OpenAI content parts must be text parts."""
        if isinstance(self.content, str):
            return self.content
        if any(part.get("type") != "text" or not isinstance(part.get("text"), str) for part in self.content):
            raise ConfigError("messages: only text content parts are supported")
        return "".join(part["text"] for part in self.content)


class ChatRequest(BaseModel):
    """What clients send; fields OpenAI defines that are not listed here are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)
    model: Optional[str] = None
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1)
    seed: Optional[int] = None
    stream: StrictBool = False
    stream_options: Optional[dict[str, Any]] = None
    stop: Optional[Union[str, list[str]]] = None
    preference: Optional[dict[str, Any]] = None


# OpenAI fields this server does not implement: a request that uses one is refused by name, never silently answered
# without it (a value that asks for nothing, e.g. `tools: []` or `logprobs: false`, passes)
UNSUPPORTED = {"tools": "tools", "tool_choice": "tool calls", "functions": "function calls",
               "function_call": "function calls", "logprobs": "log-probabilities", "top_logprobs": "log-probabilities",
               "response_format": "structured output", "logit_bias": "logit bias", "audio": "audio",
               "modalities": "modalities other than text", "prediction": "predicted outputs"}


def refuse_unsupported(request: BaseModel) -> None:
    """A `ConfigError` naming the first OpenAI field the request uses that this server does not implement."""
    for name, value in (request.model_extra or {}).items():
        asks_nothing = value in (None, False, [], {}, "none", "auto") or value == {"type": "text"}
        if name in UNSUPPORTED and not asks_nothing:
            raise ConfigError(f"{name}: this server does not implement {UNSUPPORTED[name]}")


def stop_strings(stop: Optional[Union[str, list[str]]]) -> tuple[str, ...]:
    """OpenAI's `stop` (a string or up to 4) as a tuple of non-empty strings."""
    stops = () if stop is None else (stop,) if isinstance(stop, str) else tuple(stop)
    if len(stops) > 4 or not all(stops):
        raise ConfigError("stop: up to 4 non-empty strings")
    return stops


def cut_at_stop(reply: str, stops: Sequence[str]) -> str:
    """`reply` up to the first occurrence of any stop string (which is not included)."""
    ends = [i for i in (reply.find(s) for s in stops) if i >= 0]
    return reply[:min(ends)] if ends else reply


@dataclass(frozen=True)
class Limits:
    """What one request may ask: prompt characters (413 beyond; also a scored reply's), new tokens, replies and
    scored items (400 beyond)."""

    max_prompt_chars: int = 8000
    max_tokens: int = 512
    max_n: int = 8
    max_score_items: int = 256


class TooLarge(ConfigError):
    """A request whose prompt is over the server's limit (HTTP 413)."""


def checked_prompt(request: ChatRequest, limits: Limits) -> tuple[dict, ...]:
    """The request's messages as the chat prompt every policy reads; `TooLarge` or `ConfigError` (400) naming
    the field for a prompt, max_tokens or n over `limits`."""
    refuse_unsupported(request)
    prompt = checked_messages(request.messages, limits, "messages")
    if new_tokens(request, limits) > limits.max_tokens:
        raise ConfigError(f"max_tokens: {new_tokens(request, limits)} is over this server's limit of {limits.max_tokens}")
    if request.n > limits.max_n:
        raise ConfigError(f"n: {request.n} replies is over this server's limit of {limits.max_n}")
    return prompt


def check_text(text: str, field: str) -> str:
    """`text`, or a `ConfigError` naming `field` when it is not valid Unicode (JSON lets a lone surrogate such as
    "\\ud800" through, and no tokenizer can encode it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError(f"{field}: invalid Unicode (a lone surrogate at character {e.start})") from None
    return text


def checked_messages(messages: Sequence[ChatMessage], limits: Limits, field: str) -> tuple[dict, ...]:
    """Chat messages as the prompt every policy and reward model reads; `TooLarge` over the character limit."""
    prompt = check_messages([{"role": m.role, "content": check_text(m.text(), f"{field}.{i}.content")}
                             for i, m in enumerate(messages)], field)
    chars = sum(len(m["content"]) for m in prompt)
    if chars > limits.max_prompt_chars:
        raise TooLarge(f"{field}: prompt is {chars} characters, over this server's limit of {limits.max_prompt_chars}")
    return prompt


def new_tokens(request: ChatRequest, limits: Limits) -> int:
    """max_tokens (or its newer name max_completion_tokens); the server's limit when neither is given."""
    return request.max_tokens or request.max_completion_tokens or limits.max_tokens


def preference_spec(preference: Optional[dict[str, Any]], objectives: Sequence[str]) -> Optional[str]:
    """The request's `preference` as a `--weights` spec (None: the orchestrator decides everything).

    `WeightsError` naming `preference` and the entry for an unknown objective, a value that is not a finite
    number, weights off the simplex, or a partial preference without `"auto": true`.
    """
    if preference is None:
        return None
    items = []
    for name, value in preference.items():
        if name == AUTO:
            if value is not True:
                raise WeightsError(f"preference.{AUTO}: expected true (let the orchestrator fill the rest), got {value!r}")
            items.append(AUTO)
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise WeightsError(f"preference.{name}: expected a finite number, got {value!r}")
        else:
            items.append(f"{name}={float(value)!r}")
    spec = ",".join(items)
    parse_preference(spec, objectives, "preference")
    return spec


def chosen_preference(preference: Optional[dict[str, Any]], model: Optional[str], served_name: str,
                      default: Optional[str], objectives: Sequence[str]) -> Optional[str]:
    """The `--weights` spec a request is answered under (None: the orchestrator decides everything): its
    `preference` field, else a preference in its model name (`preforch:helpful=0.8,harmless=0.2` or
    `preforch:harmless=0.5,auto`, for clients that cannot add fields), else the server's default (`serve
    --weights`). `WeightsError` naming the field for a bad one."""
    if preference is not None:
        return preference_spec(preference, objectives)
    prefix = f"{served_name}:"
    if model and model.startswith(prefix):
        spec = model[len(prefix):]
        parse_preference(spec, objectives, "model")
        return spec
    return default


class ScoreItem(BaseModel):
    """One (prompt, reply) to score; `preference` overrides the request's for this item."""

    messages: list[ChatMessage] = Field(min_length=1)
    reply: str
    preference: Optional[dict[str, Any]] = None


class ScoreRequest(BaseModel):
    """POST /v1/score: a batch of (messages, reply), and the preference to combine their scores by (the same
    forms as a chat request's; with none, the server's default, else the orchestrator's per prompt)."""

    model_config = ConfigDict(extra="allow")

    items: list[ScoreItem] = Field(min_length=1)
    preference: Optional[dict[str, Any]] = None
    model: Optional[str] = None


class CompletionRequest(BaseModel):
    """POST /v1/completions (OpenAI's legacy endpoint): a plain prompt, or a list of them, answered as a user
    message of the chat model."""

    model_config = ConfigDict(extra="allow")

    prompt: Union[str, list[str]]
    model: Optional[str] = None
    max_tokens: Optional[int] = Field(default=16, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1)
    seed: Optional[int] = None
    stream: StrictBool = False
    stop: Optional[Union[str, list[str]]] = None
    preference: Optional[dict[str, Any]] = None

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def by_objective(objectives: Sequence[str], row: Sequence[Optional[float]]) -> dict[str, Optional[float]]:
    """{objective: value} of one row of K numbers, None (JSON null) where the objective does not apply: a reply
    body never holds NaN."""
    return {o: None if v is None else float(v) for o, v in zip(objectives, row)}


def extra_logs(data: list[dict], objectives) -> dict[str, list[float]]:
    """Per objective, one number per item for an RL framework's logs (OpenRLHF averages each list): `score/<o>`
    the normalised score (0 where the objective does not apply), `applies/<o>` 1 or 0 (the mean of a score over
    the items it applies to is mean(score) / mean(applies)), `weight/<o>` the preference's weight."""
    logs = {}
    for o in objectives:
        logs[f"score/{o}"] = [d["scores"][o] or 0.0 for d in data]
        logs[f"applies/{o}"] = [float(d["scores"][o] is not None) for d in data]
        logs[f"weight/{o}"] = [d["weights"][o] for d in data]
    return logs


def completion_response(model: str, replies: Sequence[str], weights: Sequence[float], objectives: Sequence[str],
                        scores: Optional[Sequence[Sequence[Optional[float]]]], token_usage: Optional[dict] = None) -> dict:
    """An OpenAI `chat.completion` object, plus `preference` (the weights used) and, with an ensemble, each
    choice's normalised `scores` by objective (null where one does not apply); `usage` when token counts are given.
    finish_reason is always "stop": the kinds do not report truncation."""
    choices = []
    for i, reply in enumerate(replies):
        choice = {"index": i, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop",
                  "logprobs": None}
        if scores is not None:
            choice["scores"] = by_objective(objectives, scores[i])
        choices.append(choice)
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": choices, "preference": dict(zip(objectives, map(float, weights))),
            **({"usage": token_usage} if token_usage else {})}


def stream_chunks(response: dict, include_usage: bool) -> list[str]:
    """A finished `chat.completion` as OpenAI's server-sent events: per choice a chunk with its role and whole
    content, then one with its finish_reason; a usage chunk when asked; `[DONE]`. The reply is chosen before it
    is sent (best-of-N reranks whole replies), so it arrives in one piece."""
    import json

    base = {"id": response["id"], "object": "chat.completion.chunk", "created": response["created"],
            "model": response["model"]}
    events = []
    for c in response["choices"]:
        delta = {"role": "assistant", "content": c["message"]["content"]}
        extra = {k: c[k] for k in ("scores",) if k in c}
        events.append({**base, "choices": [{"index": c["index"], "delta": delta, "finish_reason": None, **extra}],
                       "preference": response["preference"]})
        events.append({**base, "choices": [{"index": c["index"], "delta": {}, "finish_reason": c["finish_reason"]}]})
    if include_usage and "usage" in response:
        events.append({**base, "choices": [], "usage": response["usage"]})
    return [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]


class RewardRequest(BaseModel):
    """POST /get_reward: OpenRLHF's remote reward request, as its client posts it (openrlhf/utils/remote_rm_utils.py,
    `remote_rm_fn`: {"query", "prompts", "labels"}). `query` is each prompt + reply as the policy's tokenizer decodes
    them (padding and special tokens kept), `prompts` the prompts after their chat template; `labels` are accepted
    and not read (an ensemble's rules find what they need in the prompt). `preference` is preforch's own addition."""

    model_config = ConfigDict(extra="allow")

    query: list[str] = Field(min_length=1)
    prompts: Optional[list[str]] = None
    labels: Optional[list[Any]] = None
    preference: Optional[dict[str, Any]] = None

    def checked_prompts(self) -> Optional[list[str]]:
        if self.prompts is not None and len(self.prompts) != len(self.query):
            raise ConfigError(f"prompts: {len(self.prompts)} prompts for {len(self.query)} queries; give one per query")
        return self.prompts


class TextScoreRequest(BaseModel):
    """vLLM's scoring request (`/score`, `/v1/score`): `text_1` the prompt(s), `text_2` the reply(s); one text_1
    scores every text_2, else the lists pair up. A prompt is read back into chat messages as /get_reward's are."""

    model_config = ConfigDict(extra="allow")

    text_1: Union[str, list[str]]
    text_2: Union[str, list[str]]
    model: Optional[str] = None
    preference: Optional[dict[str, Any]] = None

    def pairs(self) -> list[tuple[str, str]]:
        replies = [self.text_2] if isinstance(self.text_2, str) else list(self.text_2)
        prompts = [self.text_1] * len(replies) if isinstance(self.text_1, str) else list(self.text_1)
        if not replies:
            raise ConfigError("text_2: give at least one text to score")
        if len(prompts) != len(replies):
            raise ConfigError(f"text_1: {len(prompts)} texts for {len(replies)} in text_2; give one text_1 or one per text_2")
        return list(zip(prompts, replies))
