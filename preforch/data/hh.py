"""Anthropic HH-RLHF dialogues ("\\n\\nHuman: ...\\n\\nAssistant: ...") parsed into chat messages."""

from __future__ import annotations

import os
import re

from preforch.errors import DataError

_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}
_ASSISTANT = "\n\nAssistant:"


def parse_dialogue(text: str, where: str) -> list[dict]:
    """Split one HH dialogue into messages; text before the first turn marker is rejected."""
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise DataError(f"{where}: not an HH-RLHF dialogue (expected '\\n\\nHuman: ...\\n\\nAssistant: ...')")
    return [{"role": _ROLE[r], "content": c.strip()} for r, c in zip(parts[1::2], parts[2::2])]


def split_pair(chosen: str, rejected: str, where: str) -> tuple[list[dict], str, str]:
    """(prompt messages, chosen reply, rejected reply) from two dialogues with a shared history.

    As in the HH-RLHF release, the prompt is everything before the last "\\n\\nAssistant:" the two texts
    share; each reply is the rest of its text (a few upstream records carry extra turns there; kept as is).
    """
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind(_ASSISTANT)
    if cut < 0:
        raise DataError(f"{where}: 'chosen' and 'rejected' share no '\\n\\nAssistant:' turn")
    prompt = parse_dialogue(chosen[:cut], f"{where}: field 'chosen'")
    if prompt[-1]["role"] != "user":
        raise DataError(f"{where}: the shared dialogue must end with a Human turn before the replies")
    start = cut + len(_ASSISTANT)
    return prompt, chosen[start:].strip(), rejected[start:].strip()
