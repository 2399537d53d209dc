"""Train MOSLIM's classification reward model (`preforch train-rm --levels ...`).

Labels (one example per reply; heads a data set says nothing about are MASKED for it):
- a 2-level head reads preference pairs: chosen = level 1, rejected = level 0;
- a head with more levels reads rated pairs: both replies labelled with their binned score (`score_level`).
Losses are summed over heads (`classification_loss`). After training, the level statistics of the mapping are
fitted once on a sample of the training replies (the reference set) and saved in the model folder.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from preforch.data.loaders import load_preferences
from preforch.data.ratings import load_rated, score_level
from preforch.data.schema import in_validation
from preforch.hub import write_model_card
from preforch.io import atomic_write_json
from preforch.models import autocast, fast_bf16, make_accelerator, start_tracking, stop_tracking, tracker_dir
from preforch.rewards.classifier import ClassifierRewardModel
from preforch.rewards.config import RewardModelConfig
from preforch.rewards.fitting import fit
from preforch.rewards.formatting import encode_pairs
from preforch.rewards.levels import MASKED, calibration_error, classification_loss, fit_level_stats, head_probabilities

Example = tuple[tuple, str, tuple[int, ...]]  # (prompt messages, reply, label per head or MASKED)
REFERENCE_REPLIES = 1000  # training replies the level statistics are fitted on (plenty for a mean and std)


def labelled_pairs(specs: Sequence[str], num_levels: Sequence[int], cap: int | None,
                   holdout_validation: float = 0.0) -> list[tuple[Example, Example]]:
    """(chosen, rejected) examples of each spec's pairs, the k-th spec labelling the k-th head only; pairs in the
    orchestrator's validation slice of size `holdout_validation` left out (as train-rm does)."""
    out = []
    for h, (spec, n) in enumerate(zip(specs, num_levels)):
        def label(level: int) -> tuple[int, ...]:
            return tuple(level if j == h else MASKED for j in range(len(num_levels)))
        if n == 2:
            rated = [(p, 1, 0) for p in load_preferences(spec, cap)]
        else:
            rated = [(r.pair, score_level(r.score_chosen, n), score_level(r.score_rejected, n)) for r in load_rated(spec, cap)]
        out += [((p.prompt, p.chosen, label(c)), (p.prompt, p.rejected, label(r))) for p, c, r in rated
                if not (holdout_validation and in_validation(p, holdout_validation))]
    return out


@torch.no_grad()
def example_probs(model: ClassifierRewardModel, examples: Sequence[Example], cfg: RewardModelConfig, device,
                  batch_size: int = 64) -> torch.Tensor:
    """Level probabilities [N, H, L] of each example's reply."""
    model.eval()
    out = []
    for s in range(0, len(examples), batch_size):
        batch = examples[s:s + batch_size]
        enc = encode_pairs(model.tokenizer, [e[0] for e in batch], [e[1] for e in batch], cfg.max_length,
                           cfg.prompt_max_tokens).to(device)
        with autocast(device, fast_bf16(device)):
            out.append(head_probabilities(model.level_logits(enc), model.num_levels).cpu())
    model.train()
    return torch.cat(out) if out else torch.empty(0, len(model.num_levels), max(model.num_levels))


def held_out_metrics(probs_chosen: torch.Tensor, probs_rejected: torch.Tensor, labels: torch.Tensor,
                     objectives: Sequence[str]) -> dict:
    """Per head, on its own held-out pairs: pairwise accuracy (2 levels: p(level 1) of chosen > rejected; more
    levels: expected level, over pairs whose bins differ), exact and within-one-level accuracy and ECE of
    the predicted level. probs_* [N, H, L] of the pairs' replies, labels [N, 2, H] (chosen, rejected)."""
    levels = torch.arange(probs_chosen.shape[-1], dtype=torch.float32)
    out = {}
    for h, name in enumerate(objectives):
        rows = labels[:, 0, h] != MASKED
        if not rows.any():
            continue
        pc, pr, lab = probs_chosen[rows, h], probs_rejected[rows, h], labels[rows, :, h]
        ec, er = (pc * levels).sum(-1), (pr * levels).sum(-1)
        differ = lab[:, 0] != lab[:, 1]
        probs, flat = torch.cat([pc, pr]), torch.cat([lab[:, 0], lab[:, 1]])
        off = (probs.argmax(-1) - flat).abs()
        out[name] = {"pairs": int(rows.sum()), "pairwise_accuracy": (ec[differ] > er[differ]).float().mean().item(),
                     "exact_accuracy": (off == 0).float().mean().item(),
                     "within_one_accuracy": (off <= 1).float().mean().item(),
                     "ece": calibration_error(probs, flat)}
    return out


def train_classifier(cfg: RewardModelConfig, output_dir: str | None = None) -> dict:
    """Train, fit the level statistics, save to `output_dir` (default cfg.output_dir); return metrics. As
    `train_reward_model`, `train_rm_config.json` is written into the folder last, marking a finished run."""
    from accelerate.utils import set_seed

    output_dir = Path(output_dir or cfg.output_dir)
    set_seed(cfg.seed)
    accelerator = make_accelerator(cfg.report_to, tracker_dir(output_dir))
    start_tracking(accelerator, "train-rm", cfg)
    train = [e for pair in labelled_pairs(cfg.train_data, cfg.levels, cfg.max_train_pairs, cfg.holdout_validation)
             for e in pair]
    held_out = labelled_pairs(cfg.eval_data, cfg.levels, cfg.max_eval_pairs) if cfg.eval_data else []
    model = ClassifierRewardModel.from_encoder(cfg.base_model, cfg.objectives, cfg.levels, cfg.pooling, cfg.max_length,
                                               cfg.prompt_max_tokens, cfg.trust_remote_code)
    device, tok = accelerator.device, model.tokenizer

    def loss_of(model, batch):
        enc = encode_pairs(tok, [e[0] for e in batch], [e[1] for e in batch], cfg.max_length,
                           cfg.prompt_max_tokens).to(device)
        labels = torch.tensor([e[2] for e in batch], device=device)
        return classification_loss(model(**enc, return_level_logits=True).logits, labels, cfg.levels)

    # 2 x batch_size replies: as many forward passes per step as a Bradley-Terry step of batch_size pairs
    model, losses, steps = fit(accelerator, model, train, [len(e[1]) for e in train], 2 * cfg.batch_size, cfg, loss_of,
                               f"train-rm levels [{','.join(cfg.objectives)}]")
    core = accelerator.unwrap_model(model)
    reference = random.Random(cfg.seed).sample(train, min(REFERENCE_REPLIES, len(train)))
    core.stats = fit_level_stats(example_probs(core, reference, cfg, device))
    per_head = {}
    if held_out:
        chosen = example_probs(core, [c for c, _ in held_out], cfg, device)
        rejected = example_probs(core, [r for _, r in held_out], cfg, device)
        labels = torch.tensor([[c[2], r[2]] for c, r in held_out])
        per_head = held_out_metrics(chosen, rejected, labels, cfg.objectives)
    metrics = {"objectives": list(cfg.objectives), "levels": list(cfg.levels), "train_replies": len(train),
               "eval_pairs": len(held_out), "steps": steps, "reference_replies": len(reference),
               "eval_accuracy": {o: m["pairwise_accuracy"] for o, m in per_head.items()}, "heads": per_head,
               "loss_curve": losses}
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        core.save_pretrained(output_dir)
        write_model_card(output_dir, "classifier", cfg.base_model, cfg.train_data, cfg.objectives,
                         {f"{o} {name} accuracy (held out)": m[key] for o, m in per_head.items()
                          for name, key in (("pairwise", "pairwise_accuracy"), ("exact level", "exact_accuracy"))},
                         f"MOSLIM classification: cross-entropy per head, summed over heads (a 2-level head learns "
                         f"chosen = 1 and rejected = 0 from preference pairs, a head with more levels the binned scores "
                         f"of rated pairs); levels {', '.join(f'{o} {n}' for o, n in zip(cfg.objectives, cfg.levels))}; "
                         f"on {', '.join(cfg.train_data)}: {len(train)} replies, {steps} steps of {2 * cfg.batch_size}, "
                         f"learning rate {cfg.learning_rate}, {cfg.epochs:g} epoch(s), {core.pooling} pooling, seed "
                         f"{cfg.seed}. Level statistics (config.level_stats) fitted on {len(reference)} training "
                         f"replies. Held out: {len(held_out)} pairs; pairwise accuracy: the chosen reply's expected "
                         "level above the rejected one's (pairs whose levels differ); exact: the predicted level is the "
                         "label.")
        atomic_write_json(output_dir / "train_rm_config.json", {"config": asdict(cfg), "metrics": metrics})
    stop_tracking(accelerator)
    accelerator.wait_for_everyone()
    return metrics
