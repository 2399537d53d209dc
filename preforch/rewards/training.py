"""Bradley-Terry reward-model training (`preforch train-rm`).

One `MultiHeadRewardModel` with a head per objective, or one single-head model per objective; each pair
trains only its own objective's head. Runs through `accelerate`, so the same code runs on CPU, one GPU,
or under torchrun / accelerate launch.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from preforch.data.loaders import load_preferences
from preforch.data.schema import in_validation, pair_fold
from preforch.hub import push_folder, write_model_card
from preforch.io import atomic_write_json
from preforch.models import (autocast, fast_bf16, is_main_process, make_accelerator, start_tracking, stop_tracking,
                             tracker_dir)
from preforch.rewards.classifier_reward import ClassifierReward
from preforch.rewards.classifier_training import train_classifier
from preforch.rewards.config import RewardModelConfig
from preforch.rewards.crossfit import FOLDS_DIR
from preforch.rewards.fitting import fit
from preforch.rewards.formatting import encode_pairs, render_dialogue
from preforch.rewards.losses import bradley_terry_loss
from preforch.rewards.multihead import MultiHeadRewardModel
from preforch.rewards.sources import HFRewardModel

Example = tuple[int, tuple, str, str]  # (objective index, prompt messages, chosen, rejected)


def pair_scores(model, tok, batch: Sequence[Example], cfg: RewardModelConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) rewards [B] read from each example's own objective head."""
    prompts = [e[1] for e in batch]
    enc = encode_pairs(tok, prompts * 2, [e[2] for e in batch] + [e[3] for e in batch],
                       cfg.max_length, cfg.prompt_max_tokens).to(device)
    logits = model(**enc).logits.float()  # [2B, K]
    heads = torch.tensor([e[0] for e in batch], device=logits.device).repeat(2)
    picked = logits.gather(1, heads[:, None]).squeeze(1)
    return picked[: len(batch)], picked[len(batch):]


@torch.no_grad()
def pairwise_accuracy(model, tok, examples: Sequence[Example], cfg: RewardModelConfig, device,
                      num_objectives: int, batch_size: int = 64) -> list[float]:
    """Held-out accuracy per objective: fraction of pairs with r(chosen) > r(rejected)."""
    model.eval()
    hits, counts = [0] * num_objectives, [0] * num_objectives
    for s in range(0, len(examples), batch_size):
        batch = examples[s:s + batch_size]
        with autocast(device, fast_bf16(device)):
            c, r = pair_scores(model, tok, batch, cfg, device)
        for e, win in zip(batch, (c > r).tolist()):
            hits[e[0]] += win
            counts[e[0]] += 1
    model.train()
    return [h / n if n else float("nan") for h, n in zip(hits, counts)]


@torch.no_grad()
def reference_statistics(model, tok, examples: Sequence[Example], cfg: RewardModelConfig, device,
                         num_pairs: int = 256, batch_size: int = 64) -> dict[str, list[float]]:
    """{"mean": [K], "std": [K]} of every head's raw score on the chosen and rejected replies of `num_pairs`
    training pairs drawn with cfg.seed: the z-score a user outside preforch applies (an ensemble fits its own on
    its whole reference set)."""
    sample = random.Random(cfg.seed).sample(list(examples), min(num_pairs, len(examples)))
    model.eval()
    scores = []
    for s in range(0, len(sample), batch_size):
        batch = sample[s:s + batch_size]
        enc = encode_pairs(tok, [e[1] for e in batch] * 2, [e[2] for e in batch] + [e[3] for e in batch],
                           cfg.max_length, cfg.prompt_max_tokens).to(device)
        with autocast(device, fast_bf16(device)):
            scores.append(model(**enc).logits.float().cpu())
    model.train()
    raw = torch.cat(scores)
    return {"mean": raw.mean(0).tolist(), "std": raw.std(0).tolist(), "replies": len(raw)}


def _approx_length(example: Example) -> int:
    """Characters the model will read for a pair: the dialogue tail it keeps plus the longer reply."""
    return min(len(render_dialogue(example[1])), 400) + max(len(example[2]), len(example[3]))


def _examples(specs: Sequence[str], cap: int | None, exclude_fold: tuple[int, int] | None = None,
              holdout_validation: float = 0.0) -> list[Example]:
    """Pairs of the k-th data spec train the k-th head; `exclude_fold` (fold, folds) leaves that fold's pairs
    out, `holdout_validation` the orchestrator's validation slice of that size (`in_validation`)."""
    data = [(k, p) for k, s in enumerate(specs) for p in load_preferences(s, limit=cap)
            if not (holdout_validation and in_validation(p, holdout_validation))]
    if exclude_fold is not None:
        data = [(k, p) for k, p in data if pair_fold(p, exclude_fold[1]) != exclude_fold[0]]
    return [(k, p.prompt, p.chosen, p.rejected) for k, p in data]


def train_reward_model(cfg: RewardModelConfig, objectives: Sequence[str] | None = None,
                       train_specs: Sequence[str] | None = None, eval_specs: Sequence[str] | None = None,
                       output_dir: str | None = None, exclude_fold: tuple[int, int] | None = None) -> dict:
    """Train one reward model with a head per objective in `objectives` (default: all of cfg's), save it.
    With `exclude_fold` = (f, k) it trains on every pair outside cross-fitting fold f of k (see `pair_fold`).

    Returns metrics: held-out pairwise accuracy per objective and the training-loss curve. The model
    folder is swapped in whole; `train_rm_config.json` (config + metrics) is written into it last, so
    its presence marks a finished run.
    """
    from accelerate.utils import set_seed

    objectives = list(objectives or cfg.objectives)
    output_dir = Path(output_dir or cfg.output_dir)
    set_seed(cfg.seed)
    accelerator = make_accelerator(cfg.report_to, tracker_dir(output_dir))
    start_tracking(accelerator, "train-rm", cfg)
    train = _examples(cfg.train_data if train_specs is None else train_specs, cfg.max_train_pairs, exclude_fold,
                      cfg.holdout_validation)
    held_out = _examples(cfg.eval_data if eval_specs is None else eval_specs, cfg.max_eval_pairs)
    model = MultiHeadRewardModel.from_encoder(cfg.base_model, objectives, cfg.pooling, cfg.max_length,
                                              cfg.prompt_max_tokens, cfg.trust_remote_code)
    tok = model.tokenizer
    device = accelerator.device

    def loss_of(model, batch):
        return bradley_terry_loss(*pair_scores(model, tok, batch, cfg, device), cfg.center_coefficient)

    model, losses, steps = fit(accelerator, model, train, [_approx_length(e) for e in train], cfg.batch_size, cfg,
                               loss_of, f"train-rm [{','.join(objectives)}]")
    acc_after = pairwise_accuracy(model, tok, held_out, cfg, device, len(objectives)) if held_out else []
    accelerator.unwrap_model(model).normalization = reference_statistics(model, tok, train, cfg, device)
    metrics = {
        "objectives": objectives,
        "train_pairs": len(train),
        "eval_pairs": len(held_out),
        "steps": steps,
        "eval_accuracy": dict(zip(objectives, acc_after)),
        "excluded_fold": list(exclude_fold) if exclude_fold else None,
        "loss_curve": losses,
    }
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(output_dir)
        data = list(train_specs or cfg.train_data)
        write_model_card(output_dir, "reward", cfg.base_model, data, objectives,
                         {f"{o} pairwise accuracy (held out)": a for o, a in metrics["eval_accuracy"].items()},
                         f"Bradley-Terry with reward centering ({cfg.center_coefficient}) on {', '.join(data)}: "
                         f"{len(train)} pairs, {steps} steps of {cfg.batch_size}, learning rate {cfg.learning_rate}, "
                         f"{cfg.epochs:g} epoch(s), {accelerator.unwrap_model(model).pooling} pooling, seed {cfg.seed}.")
        atomic_write_json(output_dir / "train_rm_config.json", {"config": asdict(cfg), "metrics": metrics})
    stop_tracking(accelerator)
    accelerator.wait_for_everyone()  # other ranks may load the saved model next
    return metrics


def train_reward_models(cfg: RewardModelConfig) -> tuple[list[HFRewardModel], dict]:
    """Train per `cfg.multi_head`: one K-head model in `output_dir`, or K single-head models in
    `output_dir/<objective>`. With `cfg.cross_fit_folds` = k, each model also gets k fold models in
    `<model>/folds/<f>`, fold f trained without the pairs of fold f (they score those pairs for the
    orchestrator's targets, so no target comes from a model that saw its pair). With `cfg.levels`, one MOSLIM
    classification model instead (rewards/classifier_training.py). Returns the loaded reward sources and the
    metrics per model."""
    if cfg.levels:
        metrics = {cfg.output_dir: train_classifier(cfg)}
        sources = [ClassifierReward(cfg.output_dir)]
    else:
        sources, metrics = _train_bradley_terry(cfg)
    if cfg.push_to_hub and is_main_process():
        print(f"pushed {cfg.output_dir} to {push_folder(cfg.output_dir, cfg.hub_model_id)}", flush=True)
    return sources, metrics


def _train_bradley_terry(cfg: RewardModelConfig) -> tuple[list[HFRewardModel], dict]:
    """`train_reward_models` without levels: the Bradley-Terry models (and their folds), sources and metrics."""
    if cfg.multi_head or len(cfg.objectives) == 1:
        runs = [(cfg.objectives, cfg.train_data, cfg.eval_data, cfg.output_dir)]
    else:
        runs = [([o], [t], [e] if cfg.eval_data else [], str(Path(cfg.output_dir) / o))
                for o, t, e in zip(cfg.objectives, cfg.train_data, cfg.eval_data or [None] * len(cfg.objectives))]
    sources, metrics = [], {}
    for objectives, train_specs, eval_specs, out in runs:
        metrics[out] = train_reward_model(cfg, objectives, train_specs, eval_specs, out)
        for f in range(cfg.cross_fit_folds):  # after the main model: its save replaces the whole folder
            fold_out = str(Path(out) / FOLDS_DIR / str(f))
            metrics[fold_out] = train_reward_model(cfg, objectives, train_specs, eval_specs, fold_out, (f, cfg.cross_fit_folds))
        sources.append(HFRewardModel(out))
    return sources, metrics
