"""MAHALO's training math: DPO (Rafailov et al. 2023, Eq. 7) on summed reply log-probs, each pair routed to the
head of its objective, the loss averaged over the objectives a batch holds; and balanced batches."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from preforch.data.schema import Message


def dpo_losses(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
               beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss -log sigmoid(margin) and the margin beta * ((log pi_w - log ref_w) - (log pi_l - log ref_l));
    all inputs [N] summed reply log-probs -> ([N], [N]). log 2 when the policy is its reference."""
    margins = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
    return -F.logsigmoid(margins), margins


def with_chosen_nll(losses: torch.Tensor, chosen: torch.Tensor, chosen_tokens: torch.Tensor,
                    coefficient: float | torch.Tensor) -> torch.Tensor:
    """Per-pair DPO losses [N] plus `coefficient` (a number, or one per pair [N]) times the chosen reply's per-token
    negative log-likelihood (chosen: summed log-probs [N] over chosen_tokens [N] tokens): the NLL term of RPO
    (Pang et al. 2024, Eq. 2).
    DPO alone can lower the likelihood of the chosen reply as long as the rejected one falls faster, which on
    verifiable answers made greedy decoding worse (docs/results.md)."""
    return losses + coefficient * (-chosen / chosen_tokens.clamp_min(1))


def per_objective_loss(losses: torch.Tensor, margins: torch.Tensor, objective: torch.Tensor,
                       names: Sequence[str]) -> tuple[torch.Tensor, dict[str, float]]:
    """The batch loss: the mean over the objectives present of each one's mean pair loss (losses, margins,
    objective [N]; objective[i] indexes `names`), and per-objective loss, margin and accuracy for the log."""
    parts, log = [], {}
    for k, name in enumerate(names):
        rows = objective == k
        if bool(rows.any()):
            parts.append(losses[rows].mean())
            log.update({f"{name}/loss": parts[-1].item(), f"{name}/margin": margins[rows].mean().item(),
                        f"{name}/accuracy": (margins[rows] > 0).float().mean().item()})
    return torch.stack(parts).mean(), log


def epoch_steps(counts: Sequence[int], batch_size: int, epochs: float) -> int:
    """Steps that `epochs` passes over all pairs take when each step holds batch_size // K pairs per objective."""
    per = max(1, batch_size // len(counts))
    return max(1, math.ceil(epochs * sum(counts) / (per * len(counts))))


def balanced_batches(counts: Sequence[int], batch_size: int, steps: int, seed: int) -> list[list[tuple[int, int]]]:
    """`steps` batches of (objective, pair index) holding batch_size // K pairs of each of the K objectives (counts[k]
    pairs each), each objective's pairs in a seeded shuffled cycle, so no pair repeats before its objective's other
    pairs have all been seen. The same seed gives the same batches, and a longer run starts with a shorter one's."""
    rng = random.Random(seed)
    per = max(1, batch_size // len(counts))
    orders = [[] for _ in counts]
    batches = []
    for _ in range(steps):
        batch = []
        for k, n in enumerate(counts):
            while len(orders[k]) < per:
                orders[k] += rng.sample(range(n), n)
            batch += [(k, i) for i in orders[k][:per]]
            orders[k] = orders[k][per:]
        batches.append(batch)
    return batches


def encode_replies(tokenizer, prompts: Sequence[Sequence[Message]], replies: Sequence[str], max_prompt_tokens: int,
                   max_reply_tokens: int) -> dict[str, torch.Tensor]:
    """Chat-templated (prompt, reply) rows, right-padded: input_ids, attention_mask and reply_mask [B, T]
    (reply_mask marks the reply's tokens, end-of-turn included, as `reply_token_logprobs` scores them). The
    prompt keeps its last `max_prompt_tokens` tokens, the reply its first `max_reply_tokens`."""
    rows = []
    for prompt, reply in zip(prompts, replies):
        p = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": reply}], tokenize=False)
        ids = tokenizer(full, add_special_tokens=False).input_ids
        start = len(tokenizer(p, add_special_tokens=False).input_ids)
        rows.append((ids[:start][-max_prompt_tokens:], ids[start:start + max_reply_tokens]))
    width = max(len(a) + len(b) for a, b in rows)
    pad = tokenizer.pad_token_id
    out = {name: torch.full((len(rows), width), fill, dtype=torch.long)
           for name, fill in (("input_ids", pad), ("attention_mask", 0), ("reply_mask", 0))}
    for i, (a, b) in enumerate(rows):
        out["input_ids"][i, :len(a) + len(b)] = torch.tensor(a + b)
        out["attention_mask"][i, :len(a) + len(b)] = 1
        out["reply_mask"][i, len(a):len(a) + len(b)] = 1
    return out


def sequence_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, reply_mask: torch.Tensor) -> torch.Tensor:
    """Summed log pi(y | x) [B] of the reply tokens: logits [B, T, V] (position t predicts token t + 1),
    input_ids and reply_mask [B, T]."""
    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    token = logits.gather(-1, targets[..., None])[..., 0] - logits.logsumexp(-1)  # [B, T - 1]
    return (token * reply_mask[:, 1:]).sum(-1)
