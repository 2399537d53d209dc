"""Chat messages back from the formatted text that RL frameworks send a remote reward model.

OpenRLHF posts `query` (prompt + reply as the policy's tokenizer decodes them, special tokens and padding kept)
and `prompts` (the prompt after its chat template); vLLM-style scoring clients post texts. preforch's reward
models and orchestrator read chat messages, so a formatted prompt is read back into messages with the policy's
chat template (`TemplateReader`), learned once by formatting a conversation of marker strings. Text the template
did not make (a raw prompt, or no tokenizer known) is one user message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from preforch.errors import ConfigError

# Marker contents: characters no chat template writes, so each splits the rendered text exactly once
_SYSTEM, _USER, _ASSISTANT, _NEXT_USER = "\x01S\x01", "\x01U\x01", "\x01A\x01", "\x01V\x01"


@dataclass(frozen=True)
class TemplateReader:
    """What a chat template writes around each message. Learned from one tokenizer (`from_tokenizer`); None
    parts mean the template cannot be read back this way (then every prompt is one user message)."""

    system_start: str = ""  # before a system message's content
    first_user_start: str = ""  # before the first user message when there is no system message (default system)
    user_after_system: str = ""  # between a system message and the user message after it
    assistant_start: str = ""  # between a user message and the assistant message after it
    user_start: str = ""  # between an assistant message and the user message after it
    generation_prompt: str = ""  # after the last user message, where the reply starts
    special_tokens: tuple[str, ...] = ()  # stripped from the ends of a reply (padding, end of turn)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "TemplateReader":
        special = tuple(sorted({t for t in tokenizer.all_special_tokens if t}, key=len, reverse=True))
        if not getattr(tokenizer, "chat_template", None):
            return cls(special_tokens=special)

        def render(messages):
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

        turns = [{"role": "user", "content": _USER}, {"role": "assistant", "content": _ASSISTANT},
                 {"role": "user", "content": _NEXT_USER}]
        try:
            with_system = _split(render([{"role": "system", "content": _SYSTEM}, *turns]),
                                 [_SYSTEM, _USER, _ASSISTANT, _NEXT_USER])
            without = _split(render(turns), [_USER, _ASSISTANT, _NEXT_USER])
        except Exception:  # a template that refuses system messages or alternation: read prompts as raw text
            return cls(special_tokens=special)
        if with_system is None or without is None or not all(without[1:]):
            return cls(special_tokens=special)
        return cls(with_system[0], without[0], with_system[1], without[1], without[2], without[3], special)

    @property
    def reads_templates(self) -> bool:
        return bool(self.assistant_start and self.user_start and self.generation_prompt)

    def messages(self, text: str) -> tuple[dict, ...]:
        """The chat messages whose formatting is `text` (the generation prompt at its end); one user message with
        the text when the template did not make it."""
        text = self.strip_special(text, leading_only=True)
        if self.reads_templates and text.endswith(self.generation_prompt):
            read = self._read(text[: len(text) - len(self.generation_prompt)])
            if read:
                return read
        return ({"role": "user", "content": text.strip()},)

    def _read(self, body: str) -> Optional[tuple[dict, ...]]:
        messages = []
        if self.first_user_start and body.startswith(self.first_user_start):
            rest = body[len(self.first_user_start):]
        elif self.system_start and body.startswith(self.system_start) and self.user_after_system in body:
            system, rest = body[len(self.system_start):].split(self.user_after_system, 1)
            messages.append({"role": "system", "content": system})
        else:
            return None
        role, separator = "user", self.assistant_start
        while separator in rest:
            content, rest = rest.split(separator, 1)
            messages.append({"role": role, "content": content})
            role, separator = ("assistant", self.user_start) if role == "user" else ("user", self.assistant_start)
        if role != "user":  # the formatted prompt must end on a user turn
            return None
        messages.append({"role": "user", "content": rest})
        return tuple(messages)

    def strip_special(self, text: str, leading_only: bool = False) -> str:
        """`text` without the special tokens (padding, end of turn) at its start, and unless `leading_only` its
        end."""
        changed = True
        while changed:
            changed = False
            for token in self.special_tokens:
                if text.startswith(token) and not self.first_user_start.startswith(token) \
                        and not self.system_start.startswith(token):
                    text, changed = text[len(token):], True
                if not leading_only and text.endswith(token):
                    text, changed = text[: -len(token)], True
        return text


def _split(rendered: str, markers: Sequence[str]) -> Optional[list[str]]:
    """The text around each marker, in order ([len(markers) + 1]); None when one is missing or repeated."""
    parts = []
    for marker in markers:
        if rendered.count(marker) != 1:
            return None
        before, rendered = rendered.split(marker)
        parts.append(before)
    return parts + [rendered]


def split_query(query: str, prompt: Optional[str], reader: TemplateReader, field: str) -> tuple[str, str]:
    """(prompt text, reply) of `query` (prompt + reply, as OpenRLHF decodes them: padding and special tokens kept):
    the reply is the text after `prompt`, or without one after the template's last generation prompt, special tokens
    at its ends stripped. `ConfigError` naming `field` when the query cannot be split."""
    if prompt is None:
        query = reader.strip_special(query, leading_only=True)
        at = query.rfind(reader.generation_prompt) if reader.reads_templates else -1
        if at < 0:
            raise ConfigError(f"{field}: no prompt given and no chat template to find one by; send `prompts` (OpenRLHF "
                              "does) or start the server with --tokenizer naming the policy's tokenizer")
        prompt = query[: at + len(reader.generation_prompt)]
    at = query.find(prompt)
    if at < 0:
        raise ConfigError(f"{field}: does not contain its prompt (prompts must be the prompt text of each query, as "
                          "OpenRLHF sends them)")
    return query[at: at + len(prompt)], reader.strip_special(query[at + len(prompt):]).strip()
