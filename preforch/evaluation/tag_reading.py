"""Does a weights-in-context policy read its tag? A check that needs no generation.

Each held-out reply is scored by the judge, tagged with the conditioning its own scores imply (what the
policy was trained on: Eq. 10 self-weights, or RiC scores) and, separately, with another reply's. A policy
that reads the tag finds a reply likelier under its own tag: mismatched NLL - own NLL > 0, paired per reply.
Sampling noise cannot hide or fake it, so it shows whether training taught the tag before steering shows up.
"""

from __future__ import annotations

from typing import Sequence

import torch

from preforch.alignment.implicit_reward import reply_logprobs
from preforch.data.schema import Message
from preforch.evaluation.metrics import mean_interval
from preforch.rewards.scores import Scores


def mismatched(values: Scores) -> Scores:
    """Another reply's conditioning for each reply: [N, K] rolled by N // 2 rows (never its own when N > 1), the
    objectives its tag names travelling with it."""
    shift = len(values) // 2
    return Scores(values.values.roll(shift, 0), values.applies.roll(shift, 0))


def reply_nll(model, tokenizer, prompts: Sequence[Sequence[Message]], replies: Sequence[str],
              max_reply_tokens: int = 128, progress: bool = False) -> torch.Tensor:
    """Mean token NLL [N] of each reply as SFT trained it (`reply_logprobs`: the chat-templated assistant
    turn after its prompt, end-of-turn marker included, cut to its first `max_reply_tokens` tokens).

    The end marker matters: where a reply stops is how a tag on a length objective (conciseness) shows.
    """
    return -reply_logprobs(model, tokenizer, prompts, replies, max_reply_tokens, progress, per_token=True)


def tag_reading(model, tokenizer, spec, prompts: Sequence[Sequence[Message]], replies: Sequence[str],
                normalized: Scores | torch.Tensor, progress: bool = False) -> dict[str, float | None]:
    """NLL of replies [N] under their own tag and under a mismatched one; normalized [N, K] their judged scores
    (the tag, as in training, over the objectives that apply to each reply). `spec` is the policy's WicSpec.
    gap = mismatched - own (nats per token, mean and 95% CI over replies; the CI None for one reply)."""
    from preforch.alignment.wic import conditioning_values

    values = conditioning_values(spec.method, normalized, spec.tau)
    own = reply_nll(model, tokenizer, spec.tagged(prompts, values), replies, progress=progress)
    other = reply_nll(model, tokenizer, spec.tagged(prompts, mismatched(values)), replies, progress=progress)
    gap = mean_interval(other - own)
    return {"replies": len(replies), "nll_own_tag": float(own.mean()), "nll_mismatched_tag": float(other.mean()),
            "gap": gap["mean"], "gap_ci95": gap["ci95"]}
