"""The one record type every stage consumes: a prompt (chat messages) with a preferred and a rejected reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

from preforch.errors import DataError

Message = dict  # {"role": "user" | "assistant" | "system", "content": str}
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class PreferencePair:
    """One human judgement: `chosen` was preferred over `rejected` as the next assistant turn of `prompt`.

    `prompt` is a list of chat messages ending with a user turn. `source` names where the record came
    from (e.g. "hh-harmless"); it is metadata for evaluation only and never a training signal.
    """

    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    source: str = ""

    @property
    def prompt_text(self) -> str:
        """The last user turn: the part of the prompt a person would quote."""
        return self.prompt[-1]["content"]


def check_messages(messages: Sequence[Message], where: str) -> tuple[Message, ...]:
    """Validate a chat prompt: non-empty, known roles, string contents, ends with a non-empty user turn."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise DataError(f"{where}: prompt is empty")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: message {i} must be an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise DataError(f"{where}: message {i} has unknown role {m['role']!r} (expected one of {ROLES})")
        if not isinstance(m["content"], str):
            raise DataError(f"{where}: message {i} 'content' must be a string")
    if messages[-1]["role"] != "user":
        raise DataError(f"{where}: prompt must end with a user turn, got {messages[-1]['role']!r}")
    if not messages[-1]["content"].strip():
        raise DataError(f"{where}: prompt is empty (last user turn has no text)")
    return tuple({"role": m["role"], "content": m["content"]} for m in messages)


def trim_dialogue(messages: Sequence[Message], count_tokens: Callable[[Sequence[Message]], int],
                  max_tokens: int) -> tuple[Message, ...]:
    """Drop the oldest turns until `count_tokens(messages) <= max_tokens`: a leading system message stays, the kept
    part starts with a user turn, and the last user turn is always kept (it may alone exceed `max_tokens`; the
    caller decides what to do with such a prompt). The end of a dialogue is what the next reply answers."""
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = list(messages[len(system):])
    while len(turns) > 1 and count_tokens(system + turns) > max_tokens:
        turns.pop(0)
        while len(turns) > 1 and turns[0]["role"] != "user":
            turns.pop(0)
    return tuple(system + turns)


def as_messages(prompt: str | Sequence[Message], where: str) -> tuple[Message, ...]:
    """A plain-string prompt becomes one user message; a message list is validated as is."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError(f"{where}: prompt is empty")
        return ({"role": "user", "content": prompt},)
    if not isinstance(prompt, (list, tuple)):
        raise DataError(f"{where}: must be a string or a list of chat messages, got {type(prompt).__name__}")
    return check_messages(prompt, where)


def content_key(prompt: Sequence[Message], response: str | None = None) -> str:
    """Stable hash of a prompt (and optionally a reply): the key of every per-prompt / per-pair cache."""
    import hashlib
    import json

    parts = [list(prompt)] if response is None else [list(prompt), response]
    return hashlib.sha1(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def pair_fold(pair: PreferencePair, folds: int, salt: str = "") -> int:
    """The fold (0..folds-1) of a pair: a stable hash of its content, so reward-model training and target
    scoring agree on the assignment without storing it, whatever order the data comes in. A different
    `salt` gives an independent assignment (e.g. the validation split)."""
    if folds < 2:
        raise ValueError(f"a split needs at least 2 folds, got {folds}")
    return int(content_key(pair.prompt, salt + "\0" + pair.chosen + "\0" + pair.rejected), 16) % folds


def in_validation(pair: PreferencePair, fraction: float) -> bool:
    """Whether a pair belongs to the validation slice (about `fraction` of any data set, by a stable hash):
    the orchestrator calibrates on it, and reward models can be told to leave it out (`holdout_validation`)."""
    return pair_fold(pair, 1000, "validation") < round(1000 * fraction)


def validation_split(pairs: Iterable[PreferencePair], fraction: float) -> tuple[list[int], list[int]]:
    """(training indices, validation indices) under `in_validation`."""
    held = [in_validation(p, fraction) for p in pairs]
    return [i for i, h in enumerate(held) if not h], [i for i, h in enumerate(held) if h]


@dataclass
class PreferenceDataset:
    """An ordered collection of `PreferencePair`s with the few views later stages need."""

    pairs: list[PreferencePair] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[PreferencePair]:
        return iter(self.pairs)

    def __getitem__(self, i):
        return PreferenceDataset(self.pairs[i]) if isinstance(i, slice) else self.pairs[i]

    @property
    def prompts(self) -> list[tuple[Message, ...]]:
        return [p.prompt for p in self.pairs]

    def all_replies(self) -> tuple[list[tuple[Message, ...]], list[str]]:
        """Every reply as its own sample: (prompts, replies), the chosen replies first, then the rejected."""
        return self.prompts * 2, [p.chosen for p in self.pairs] + [p.rejected for p in self.pairs]

    @property
    def sources(self) -> list[str]:
        return [p.source for p in self.pairs]

    @classmethod
    def concat(cls, parts: Iterable["PreferenceDataset"]) -> "PreferenceDataset":
        return cls([p for part in parts for p in part.pairs])

    def shuffled(self, seed: int) -> "PreferenceDataset":
        import random

        pairs = list(self.pairs)
        random.Random(seed).shuffle(pairs)
        return PreferenceDataset(pairs)

    def subset(self, indices: Iterable[int]) -> "PreferenceDataset":
        return PreferenceDataset([self.pairs[i] for i in indices])

    def to_hf(self):
        """A `datasets.Dataset` in TRL's conversational preference format, plus a `source` column."""
        from datasets import Dataset

        return Dataset.from_list(
            [
                {
                    "prompt": list(p.prompt),
                    "chosen": [{"role": "assistant", "content": p.chosen}],
                    "rejected": [{"role": "assistant", "content": p.rejected}],
                    "source": p.source,
                }
                for p in self.pairs
            ]
        )


def text_of(item: str | Sequence[Message]) -> str:
    """The text of a prompt or completion in either of TRL's formats: a plain string (standard) or a message
    list (conversational), whose last message is the prompt's user turn or the completion itself."""
    return item if isinstance(item, str) else item[-1]["content"]
