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

from pydantic import BaseModel, ConfigDict, Field

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
    stream: bool = False
    preference: Optional[dict[str, Any]] = None


@dataclass(frozen=True)
class Limits:
    """What one request may ask: prompt characters (413 beyond), new tokens and replies (400 beyond)."""

    max_prompt_chars: int = 8000
    max_tokens: int = 512
    max_n: int = 8


class TooLarge(ConfigError):
    """A request whose prompt is over the server's limit (HTTP 413)."""


def checked_prompt(request: ChatRequest, limits: Limits) -> tuple[dict, ...]:
    """The request's messages as the chat prompt every policy reads; `TooLarge` or `ConfigError` (400) naming
    the field for a prompt, max_tokens or n over `limits` or a stream request."""
    if request.stream:
        raise ConfigError("stream: streaming responses are not supported; send stream=false")
    prompt = check_messages([{"role": m.role, "content": m.text()} for m in request.messages], "messages")
    chars = sum(len(m["content"]) for m in prompt)
    if chars > limits.max_prompt_chars:
        raise TooLarge(f"messages: prompt is {chars} characters, over this server's limit of {limits.max_prompt_chars}")
    if new_tokens(request, limits) > limits.max_tokens:
        raise ConfigError(f"max_tokens: {new_tokens(request, limits)} is over this server's limit of {limits.max_tokens}")
    if request.n > limits.max_n:
        raise ConfigError(f"n: {request.n} replies is over this server's limit of {limits.max_n}")
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


def completion_response(model: str, replies: Sequence[str], weights: Sequence[float], objectives: Sequence[str],
                        scores: Optional[Sequence[Sequence[float]]]) -> dict:
    """An OpenAI `chat.completion` object, plus `preference` (the weights used) and, with an ensemble, each
    choice's normalised `scores` by objective. finish_reason is always "stop": the kinds do not report truncation."""
    choices = []
    for i, reply in enumerate(replies):
        choice = {"index": i, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop",
                  "logprobs": None}
        if scores is not None:
            choice["scores"] = dict(zip(objectives, map(float, scores[i])))
        choices.append(choice)
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": choices, "preference": dict(zip(objectives, map(float, weights)))}
