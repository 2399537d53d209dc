"""Splits that keep a conversation on one side: pairs that open with the same human turn are one group.

HH-RLHF holds several dialogues that start from the same question and branch later, so a split by whole-prompt
content (`schema.validation_split`) can put one branch in training and another in evaluation: 80 of the 1,000
bundled HH test pairs (hh-helpful 47, hh-harmless 33) open with the first human turn of a bundled training pair, and
11 first turns recur within the test pairs themselves. Splitting by the first turn keeps each such family together.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from preforch.data.schema import Message, PreferenceDataset
from preforch.errors import ConfigError


def first_turn_key(prompt: Sequence[Message]) -> str:
    """The prompt's first user turn, whitespace collapsed and lower-cased: the key a conversation family shares."""
    first = next(m["content"] for m in prompt if m["role"] == "user")
    return " ".join(first.split()).lower()


def _group_draw(key: str, seed: int) -> float:
    """A stable draw in [0, 1) per (first turn, seed): the same whatever order or company the data comes in."""
    return int(hashlib.sha1(f"{seed}\0{key}".encode()).hexdigest(), 16) / 16 ** 40


def split_by_first_turn(data: PreferenceDataset, fraction: float,
                        seed: int) -> tuple[PreferenceDataset, PreferenceDataset]:
    """(a, b): about `fraction` of the first-turn groups in b, the rest in a, each in `data`'s order; every pair of a
    group lands on one side, so the two share no first turn. Which side a group takes depends only on its key and
    `seed`."""
    if not 0 < fraction < 1:
        raise ConfigError(f"a split's fraction must lie strictly between 0 and 1, got {fraction}")
    in_b = [_group_draw(first_turn_key(p.prompt), seed) < fraction for p in data]
    return (PreferenceDataset([p for p, b in zip(data, in_b) if not b]),
            PreferenceDataset([p for p, b in zip(data, in_b) if b]))


def shared_first_turns(a: PreferenceDataset, b: PreferenceDataset) -> set[str]:
    """The first-turn keys (`first_turn_key`) found in both data sets: empty when b is held out from a."""
    return {first_turn_key(p.prompt) for p in a} & {first_turn_key(p.prompt) for p in b}
