"""Sampling replies from a causal LM: the sampling settings, chat-prompt encoding, and N candidates per prompt
(what best-of-N, WiC's online stage and most serving kinds draw from)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from preforch.data.schema import Message

Prompts = Sequence[Sequence[Message]]  # P chat prompts
Replies = list[list[str]]  # [P][n]: n replies per prompt


@dataclass
class SamplingConfig:
    """num_candidates: replies sampled per prompt. temperature 0 decodes greedily (then every candidate is the
    same; callers ask for one). seed: what a preference policy (preforch/serving) seeds the sampler with before
    it samples; `sample_candidates` itself leaves the random state alone."""

    num_candidates: int = 4
    max_new_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95
    batch_size: int = 8
    seed: int = 0


def encode_prompts(tokenizer, prompts: Sequence[Sequence[Message]], device):
    """Chat prompts through the tokenizer's chat template, ready to answer: input_ids and attention_mask [B, T],
    padded on the tokenizer's side (left, as `load_policy` sets it, for batched decoding)."""
    texts = [tokenizer.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True) for p in prompts]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)


def reply_rows(replies: Sequence[str], n: int) -> list[list[str]]:
    """Decoded replies, n per prompt in prompt order, as [P][n] rows of stripped texts."""
    return [[r.strip() for r in replies[i:i + n]] for i in range(0, len(replies), n)]


@torch.no_grad()
def sample_candidates(model, tokenizer, prompts: Prompts, cfg: SamplingConfig,
                      progress: bool = True, before_batch: Callable[[list[int]], None] | None = None) -> Replies:
    """N sampled replies per chat prompt (the model's chat template), batched with left padding; `before_batch`
    is told each batch's prompt indices before it decodes (its rows are those prompts, each repeated N times)."""
    decoding = ({"do_sample": False} if cfg.temperature == 0
                else {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p})
    # Batches of similar length: a left-padded batch costs its longest prompt at every decoding step.
    lengths = [sum(len(m["content"]) for m in p) for p in prompts]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    out: list[list[str]] = [[] for _ in prompts]
    bar = tqdm(total=len(prompts) * cfg.num_candidates, desc="generating", unit="resp", disable=not progress)
    for s in range(0, len(order), cfg.batch_size):
        chunk = order[s:s + cfg.batch_size]
        enc = encode_prompts(tokenizer, [prompts[i] for i in chunk], model.device)
        if before_batch is not None:
            before_batch(chunk)
        gen = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **decoding,
                             max_new_tokens=cfg.max_new_tokens, num_return_sequences=cfg.num_candidates,
                             pad_token_id=tokenizer.pad_token_id)
        replies = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for i, row in zip(chunk, reply_rows(replies, cfg.num_candidates)):
            out[i] = row
        bar.update(len(chunk) * cfg.num_candidates)
    bar.close()
    return out

