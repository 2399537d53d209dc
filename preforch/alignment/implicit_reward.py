"""Log-probabilities of replies and DPO's implicit reward `beta * (log pi(y|x) - log pi_ref(y|x))`: how far a
policy moved from its reference towards the preferred reply of held-out pairs (per-objective experts report it)."""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from preforch.data.schema import Message


@torch.no_grad()
def reply_token_logprobs(model, tokenizer, prompt: Sequence[Message], reply: str, max_reply_tokens: int = 128) -> torch.Tensor:
    """log pi(y_t | x, y_<t) [T] of each token of `reply` as SFT and DPO train it: the chat-templated assistant
    turn after its prompt, end-of-turn marker included, cut to its first `max_reply_tokens` tokens."""
    p = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": reply}], tokenize=False)
    start = tokenizer(p, add_special_tokens=False, return_tensors="pt").input_ids.shape[1]
    ids = tokenizer(full, add_special_tokens=False, return_tensors="pt").input_ids
    ids = ids[:, :start + max_reply_tokens].to(model.device)
    logits = model(ids).logits[0, start - 1:-1].float()  # [T, V]: position t predicts token t + 1
    return logits.log_softmax(-1).gather(-1, ids[0, start:, None])[:, 0]


def reply_logprobs(model, tokenizer, prompts: Sequence[Sequence[Message]], replies: Sequence[str],
                   max_reply_tokens: int = 128, progress: bool = False, per_token: bool = False) -> torch.Tensor:
    """log pi(y | x) [N]: each reply's token log-probabilities (`reply_token_logprobs`) summed, or averaged over
    its tokens with `per_token`."""
    pairs = tqdm(list(zip(prompts, replies)), desc="log-probs", unit="reply", disable=not progress)
    reduce = torch.mean if per_token else torch.sum
    return torch.tensor([reduce(reply_token_logprobs(model, tokenizer, p, r, max_reply_tokens)).item() for p, r in pairs])


def implicit_reward_accuracy(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor,
                             ref_rejected: torch.Tensor, beta: float, per_pair: bool = False) -> dict:
    """DPO's implicit reward r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x)) on pairs; all inputs [N] log-probs.

    accuracy: share of pairs with r(x, y_w) > r(x, y_l) (ties count as wrong, as in TRL); margin: the mean of
    r(x, y_w) - r(x, y_l); with `per_pair`, correct: [N] 0/1 per pair, for comparisons paired on the pairs.
    """
    margins = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))  # [N]
    out = {"accuracy": float((margins > 0).float().mean()), "margin": float(margins.mean())}
    return {**out, "correct": (margins > 0).int().tolist()} if per_pair else out


def length_balanced_accuracy(correct: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor) -> dict:
    """Accuracy within the pairs whose chosen reply is longer and within those whose chosen reply is shorter (correct:
    [N] 0/1; chosen_tokens, rejected_tokens: [N] reply tokens scored), and `length_balanced_accuracy`, the mean of the
    two (of the one where the other holds no pair); pairs of equal length are left out of both.

    The implicit reward sums a per-token log-ratio, so a head that learned only "shorter is better" is right on every
    pair whose chosen reply is shorter: its plain accuracy is that share of pairs, its balanced accuracy 0.5.
    """
    correct = correct.float()
    strata = {"chosen_longer": chosen_tokens > rejected_tokens, "chosen_shorter": chosen_tokens < rejected_tokens}
    out = {f"accuracy_{name}": float(correct[rows].mean()) if bool(rows.any()) else None for name, rows in strata.items()}
    out.update({f"pairs_{name}": int(rows.sum()) for name, rows in strata.items()})
    seen = [a for a in (out["accuracy_chosen_longer"], out["accuracy_chosen_shorter"]) if a is not None]
    out["length_balanced_accuracy"] = sum(seen) / len(seen) if seen else None
    return out


def own_objective_accuracies(table: dict[str, dict[str, dict]], row_name: str) -> dict[str, float]:
    """A model card's held-out numbers from a {head or expert: {data objective: cell}} table: each row on its own
    objective's pairs (on every objective's, for a row named after none, e.g. MAHALO's pooled head), plain and, where
    the cell has it, length-balanced."""
    out = {}
    for row, cells in table.items():
        for objective in [row] if row in cells else list(cells):
            name, cell = f"{row_name} {row} on {objective} pairs", cells[objective]
            out[f"{name}: implicit-reward accuracy (held out)"] = cell["accuracy"]
            if cell.get("length_balanced_accuracy") is not None:
                out[f"{name}: length-balanced accuracy (held out)"] = cell["length_balanced_accuracy"]
    return out
