"""Decoding with several causal LMs at once, their next-token distributions mixed per row by preference weights
(MOD, Shi et al. 2024): what the mod kind answers with.

reverse-kl (MOD's main form): score(y_t) = sum_i w_i log pi_i(y_t | x, y_<t)
forward-kl:                   score(y_t) = -logsumexp_i(log w_i - log pi_i(y_<=t | x))
where log pi_i(y_<=t | x) is expert i's log-prob of the whole prefix up to and including y_t, as MOD's own decoding
accumulates it: forward-KL's combination is not linear, so the per-token form would pick other tokens. Subtracting
the chosen prefix's combined score is a per-row constant, which argmax and softmax ignore, so only each expert's
log-prob of the prefix chosen so far is carried. For reverse-KL the prefix terms sum_i w_i log pi_i(y_<t | x) are
such a constant themselves, so the per-token form above is the same decoding.

The scores mix normalised log-probabilities, as MOD's derivation does (its released greedy search mixes the
post-processor logits, its beam search log-softmaxes them first). With logits z_i, log pi_i = z_i - log Z_i. For
reverse-KL the offsets add sum_i w_i log Z_i, one number per row, so raw logits would decode the same (up to
rounding). For forward-KL they do not cancel: -logsumexp_i(log w_i - z_i) puts weight w_i / Z_i on model i, so each
model's arbitrary per-step offset would reweigh it. Normalised log-probs also keep a mixed score comparable across
steps and models, and readable as a (weighted) log-probability. Then greedy or temperature / top-p sampling, as
`generate` does for one model.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

DIVERGENCES = ("reverse-kl", "forward-kl")


def mix_log_probs(log_probs: torch.Tensor, weights: torch.Tensor, divergence: str = "reverse-kl") -> torch.Tensor:
    """Next-token scores [B, V] from log_probs [E, B, V] of E models (for forward-kl, of the whole prefix ending in
    each candidate token) and weights [B, E] (rows on the simplex).
    A model a row weighs 0 plays no part in that row (its -inf log-probs must not make 0 * -inf = nan)."""
    w = weights.T[:, :, None].to(log_probs.dtype)  # [E, B, 1]
    if divergence == "reverse-kl":
        return torch.where(w > 0, w * log_probs, 0.0).sum(0)
    return -torch.where(w > 0, w.log() - log_probs, -torch.inf).logsumexp(0)


class AdapterView:
    """One adapter of a peft model as a causal LM of its own: every call runs the model with that adapter on, so
    LoRA experts on one base model share its weights (each still keeps its own KV cache)."""

    def __init__(self, model, adapter: str):
        self.model, self.adapter = model, adapter

    def __call__(self, **inputs):
        self.model.set_adapter(self.adapter, inference_mode=True)
        return self.model(**inputs)


def end_tokens(model, tokenizer) -> list[int]:
    """The token ids that end a reply: the model's generation config's, else the tokenizer's EOS."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    eos = tokenizer.eos_token_id if eos is None else eos
    return [eos] if isinstance(eos, int) else list(eos)


@torch.no_grad()
def mixed_decode(models: Sequence[Callable], input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 weights: torch.Tensor, *, max_new_tokens: int, eos_ids: Sequence[int], pad_id: int,
                 temperature: float = 0.0, top_p: float = 1.0, divergence: str = "reverse-kl") -> torch.Tensor:
    """New tokens [B, N] (N <= max_new_tokens) for left-padded prompts input_ids, attention_mask [B, T], each row
    under its own weights [B, E] over `models`: E callables taking a Hugging Face causal-LM forward's arguments
    (models, or `AdapterView`s of one peft model) that share one tokenizer. Each model keeps its own KV cache (the
    prompt is encoded once per model); a model no row weighs is never run. A row stops at its first token in
    `eos_ids` (kept) and is `pad_id` after it; decoding stops when every row has. temperature 0: greedy; else
    sampling at `temperature` with nucleus `top_p`, from torch's global random state. forward-kl mixes each model's
    log-prob of the whole prefix chosen so far plus the candidate (see the module doc); reverse-kl the token's alone,
    which decodes the same."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    used = [i for i in range(len(models)) if bool((weights[:, i] > 0).any())]
    weights = weights[:, used]
    warp = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)]) if temperature else None
    eos = torch.tensor(list(eos_ids), device=input_ids.device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding: each row counts from its first token
    caches: list = [None] * len(used)
    done = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
    prefix = torch.zeros(len(used), len(input_ids), device=input_ids.device)  # [E', B]: log pi_i(y_<t | x), forward-kl
    step_ids, new = input_ids, []
    for _ in range(max_new_tokens):
        log_probs = []
        for j, i in enumerate(used):
            out = models[i](input_ids=step_ids, attention_mask=attention_mask, position_ids=position_ids,
                            past_key_values=caches[j], use_cache=True, logits_to_keep=1)
            caches[j] = out.past_key_values
            log_probs.append(out.logits[:, -1].float().log_softmax(-1))
        log_probs = torch.stack(log_probs)  # [E', B, V]
        if divergence == "forward-kl":
            log_probs = log_probs + prefix[:, :, None]  # each candidate's whole-prefix log-prob under each model
        scores = mix_log_probs(log_probs, weights, divergence)  # [B, V]
        if warp is None:
            token = scores.argmax(-1)
        else:
            token = torch.multinomial(warp(input_ids, scores).softmax(-1), 1)[:, 0]
        token = torch.where(done, pad_id, token)
        if divergence == "forward-kl":  # a finished row keeps its prefix: its padding is no choice of the mix
            prefix = torch.where(done, prefix, log_probs.gather(-1, token.expand(len(used), -1)[..., None])[..., 0])
        new.append(token)
        done |= torch.isin(token, eos)
        if bool(done.all()):
            break
        step_ids = token[:, None]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(token), 1)], dim=-1)
        position_ids = position_ids[:, -1:] + 1
    return torch.stack(new, dim=1)
