"""How a (prompt, response) pair is shown to a reward model or the orchestrator: one place, so training,
target computation and evaluation always see the same text."""

from __future__ import annotations

from typing import Sequence

from preforch.data.schema import Message
from preforch.models import length_bucket

_SPEAKER = {"user": "Human", "assistant": "Assistant", "system": "System"}


def render_dialogue(messages: Sequence[Message]) -> str:
    """Plain-text dialogue, one `Speaker: text` line per turn (for encoders without a chat template)."""
    return "\n".join(f"{_SPEAKER[m['role']]}: {m['content']}" for m in messages)


def keep_last_tokens(tokenizer, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Cut each text to its last `max_tokens` tokens: the end of a dialogue matters most for rewards."""
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return [t if len(i) <= max_tokens else tokenizer.decode(i[-max_tokens:]) for t, i in zip(texts, ids)]


def encode_pairs(tokenizer, prompts: Sequence[Sequence[Message]], responses: Sequence[str],
                 max_length: int, prompt_max_tokens: int):
    """Tokenise (prompt, response) pairs for a sequence classifier -> padded `BatchEncoding` (lengths rounded
    up to `models.length_bucket()`, the padding masked).

    With a chat template (decoder reward models) the conversation is rendered by the template and cut
    from the left; without one (BERT-style encoders) the dialogue tail and the response are a text pair,
    the dialogue kept to its last `prompt_max_tokens` tokens and the response cut from the right.
    """
    if getattr(tokenizer, "chat_template", None):
        texts = [
            tokenizer.apply_chat_template([*p, {"role": "assistant", "content": r}], tokenize=False)
            for p, r in zip(prompts, responses)
        ]
        side, tokenizer.truncation_side = tokenizer.truncation_side, "left"
        try:
            return tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                             pad_to_multiple_of=length_bucket(), return_tensors="pt")
        finally:
            tokenizer.truncation_side = side
    dialogues = keep_last_tokens(tokenizer, [render_dialogue(p) for p in prompts], prompt_max_tokens)
    return tokenizer(dialogues, list(responses), truncation="only_second", max_length=max_length,
                     padding=True, pad_to_multiple_of=length_bucket(), return_tensors="pt")


def encode_prompts(tokenizer, prompts: Sequence[Sequence[Message]], max_length: int):
    """Tokenise prompts alone (orchestrator input), keeping the end of long dialogues."""
    return tokenizer(keep_last_tokens(tokenizer, [render_dialogue(p) for p in prompts], max_length - 2),
                     truncation=True, max_length=max_length, padding=True, pad_to_multiple_of=length_bucket(),
                     return_tensors="pt")
