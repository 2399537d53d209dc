"""Step-level guided decoding (MAHALO's PRM-guided decoding): greedy step-level best-of-N. At each step, N
continuations are sampled from the current KV cache up to a step boundary, each prefix is scored, the best is
kept and decoding continues from its cache (transformers' `DynamicCache`; nothing is re-encoded).

A continuation that ends early is padded with masked positions while the others run on; the kept row keeps its
attention mask, so those positions stay invisible, and explicit position ids count real tokens only.
`reuse_cache=False` re-encodes the whole context at every token instead: the baseline for wall time, and the
check that the cache changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from preforch.errors import ConfigError

BOUNDARIES = {"paragraph": ("\n\n",), "sentence": ("\n\n", ". ", "? ", "! ", ".\n", "?\n", "!\n")}


@dataclass(frozen=True)
class StepRule:
    """A step ends when its text ends with one of `markers` and it has at least `min_tokens` tokens, or at
    `max_tokens` tokens (so a boundary that never occurs still ends every step)."""

    markers: tuple[str, ...] = BOUNDARIES["paragraph"]
    min_tokens: int = 8
    max_tokens: int = 64

    @classmethod
    def named(cls, name: str, min_tokens: int = 8, max_tokens: int = 64) -> StepRule:
        """'paragraph' ("\\n\\n", as MAHALO), 'sentence', or any literal marker text."""
        if not name:
            raise ConfigError("step boundary: empty")
        return cls(BOUNDARIES.get(name, (name,)), min_tokens, max_tokens)

    def ends(self, text: str, num_tokens: int) -> bool:
        return num_tokens >= self.max_tokens or (num_tokens >= self.min_tokens and text.rstrip(" ").endswith(
            tuple(m.rstrip(" ") for m in self.markers)))


def next_token(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Tokens [B] from next-token logits [B, V]: argmax at temperature 0, else nucleus sampling."""
    if temperature == 0:
        return logits.argmax(-1)
    from transformers import TopPLogitsWarper

    probs = TopPLogitsWarper(top_p)(None, logits.float() / temperature).softmax(-1)
    return torch.multinomial(probs, 1)[:, 0]


@torch.no_grad()
def guided_decode(lm: Callable, prompt_ids: torch.Tensor, score: Callable[[list[list[int]]], torch.Tensor], *,
                  num_candidates: int, rule: StepRule, decode: Callable[[list[int]], str], max_new_tokens: int,
                  eos_ids: Sequence[int], temperature: float = 0.7, top_p: float = 1.0,
                  reuse_cache: bool = True) -> list[int]:
    """New tokens for one prompt prompt_ids [1, T]. lm: a causal-LM callable (input_ids, attention_mask,
    position_ids, past_key_values, use_cache) -> .logits, .past_key_values. score: N token lists (all new tokens so
    far, one per candidate) -> [N] scores; decode: tokens -> text, for the step rule."""
    from transformers import DynamicCache

    dev, n, eos = prompt_ids.device, num_candidates, set(eos_ids)
    mask = torch.ones_like(prompt_ids)
    out = lm(input_ids=prompt_ids, attention_mask=mask, past_key_values=DynamicCache() if reuse_cache else None,
             use_cache=reuse_cache)
    logits, cache, kept = out.logits[:, -1].float(), out.past_key_values, []
    while len(kept) < max_new_tokens and not (kept and kept[-1] in eos):
        rows: list[list[int]] = [[] for _ in range(n)]
        row_logits, row_mask = logits.repeat(n, 1), mask.repeat(n, 1)
        row_cache = copy.deepcopy(cache) if reuse_cache else None
        if reuse_cache:
            row_cache.batch_repeat_interleave(n)
        active = torch.ones(n, dtype=torch.bool, device=dev)
        while bool(active.any()):
            token = next_token(row_logits, temperature, top_p)
            for r in active.nonzero()[:, 0].tolist():
                rows[r].append(int(token[r]))
            fed = active.clone()
            for r in fed.nonzero()[:, 0].tolist():
                done = (rows[r][-1] in eos or len(kept) + len(rows[r]) >= max_new_tokens
                        or rule.ends(decode(rows[r]), len(rows[r])))
                active[r] = not done
            row_mask = torch.cat([row_mask, fed.long()[:, None]], dim=1)
            if reuse_cache:
                position = row_mask.sum(1, keepdim=True) - 1
                o = lm(input_ids=token[:, None], attention_mask=row_mask, position_ids=position,
                       past_key_values=row_cache, use_cache=True)
                row_cache, step_logits = o.past_key_values, o.logits[:, -1].float()
            else:  # every row fed this token has the same length: one batch, no padding
                idx = fed.nonzero()[:, 0]
                ids = torch.tensor([[*context_ids(prompt_ids, kept), *rows[r]] for r in idx.tolist()], device=dev)
                step_logits = torch.zeros_like(row_logits)
                step_logits[idx] = lm(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1].float()
            row_logits = torch.where(fed[:, None], step_logits, row_logits)
        best = int(score([kept + r for r in rows]).argmax()) if n > 1 else 0
        kept += rows[best]
        logits, mask = row_logits[best:best + 1], row_mask[best:best + 1]
        if reuse_cache:
            row_cache.batch_select_indices(torch.tensor([best], device=dev))
            cache = row_cache
    return kept


def context_ids(prompt_ids: torch.Tensor, kept: list[int]) -> list[int]:
    return [*prompt_ids[0].tolist(), *kept]
