"""The reward-model training loop both train-rm kinds share (Bradley-Terry in `training.py`, MOSLIM's
classifier in `classifier_training.py`), kept below both so neither imports the other's module for it."""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from preforch.rewards.config import RewardModelConfig


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, group: int = 50) -> list[list[int]]:
    """One epoch of batches [n / batch_size][batch_size] in random order, each made of examples of similar
    length: shuffle, sort within windows of `group` batches, cut, shuffle the batches. A padded batch costs
    its longest member, so this saves the compute random batches spend on padding."""
    order = rng.sample(range(len(lengths)), len(lengths))
    window = group * batch_size
    batches = []
    for s in range(0, len(order), window):
        chunk = sorted(order[s:s + window], key=lambda i: lengths[i])
        batches += [chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def fit(accelerator, model, train: Sequence, lengths: Sequence[int], batch_size: int, cfg: RewardModelConfig,
        loss_of: Callable, desc: str) -> tuple:
    """The reward-model training loop both train-rm kinds share: AdamW (the heads at cfg.head_learning_rate if
    set) with linear warm-up and decay over cfg.epochs passes of length-grouped batches of `batch_size` examples,
    dropout off if cfg.disable_dropout; `loss_of(model, batch)` is the loss. Returns (the accelerate-prepared model, loss per step, steps)."""
    from transformers import get_linear_schedule_with_warmup
    from trl.trainer.utils import disable_dropout_in_model

    if cfg.disable_dropout:
        disable_dropout_in_model(model)
    steps = max(1, math.ceil(len(train) * cfg.epochs / batch_size))
    heads = list(model.head.parameters())
    encoder = [p for p in model.parameters() if all(p is not h for h in heads)]
    optimizer = torch.optim.AdamW([{"params": encoder}, {"params": heads, "lr": cfg.head_learning_rate or cfg.learning_rate}],
                                  lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    rng = random.Random(cfg.seed)
    queue: list[list[int]] = []
    losses: list[float] = []
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not accelerator.is_local_main_process)
    for step in bar:
        if not queue:
            queue = length_grouped_batches(lengths, batch_size, rng)
        # Each process takes its own slice of the global batch (data parallel without a DataLoader).
        loss = loss_of(model, [train[i] for i in queue.pop()[accelerator.process_index::accelerator.num_processes]])
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        accelerator.log({"loss": losses[-1], "learning_rate": scheduler.get_last_lr()[0]}, step=step + 1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    return model, losses, steps
