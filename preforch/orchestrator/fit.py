"""Training the orchestrator on reward-derived targets (paper Eq. 6-8).

Two modes: with a frozen encoder (default) the prompts are encoded once and only the head trains, for
many epochs in seconds; with `train_encoder` the whole model trains through `accelerate`.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import torch
from tqdm.auto import tqdm

from preforch.config import OrchestratorConfig
from preforch.data.schema import Message, PreferenceDataset
from preforch.orchestrator.losses import orchestrator_kl_loss
from preforch.orchestrator.model import PreferenceOrchestrator
from preforch.orchestrator.targets import implicit_preference_weights
from preforch.rewards.ensemble import RewardEnsemble


def preference_targets(ensemble: RewardEnsemble, data: PreferenceDataset, tau: float, progress: bool = True) -> torch.Tensor:
    """w*(x) [N, K] from the normalised ensemble scores of each pair's chosen response (Eq. 6-7)."""
    normalized = ensemble.score(data.prompts, [p.chosen for p in data], progress=progress)
    return implicit_preference_weights(normalized, tau)


def _batches(n: int, batch_size: int, rng: random.Random):
    idx = rng.sample(range(n), n)
    return [idx[s:s + batch_size] for s in range(0, n, batch_size)]


def fit_orchestrator(model: PreferenceOrchestrator, prompts: Sequence[Sequence[Message]], targets: torch.Tensor,
                     cfg: OrchestratorConfig, progress: bool = True) -> list[float]:
    """Minimise mean KL(w* || f_phi) over `prompts`; returns the mean loss of each epoch."""
    from accelerate.utils import set_seed

    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
    set_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    model.clear_cache()
    history: list[float] = []
    if not cfg.train_encoder:
        model.encoder.requires_grad_(False)
        feats = model.embed(prompts, progress=progress).to(model.device)
        targets = targets.to(model.device)
        opt = torch.optim.AdamW(model.head.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        for _ in tqdm(range(cfg.num_epochs), desc="orchestrator head", disable=not progress):
            losses = []
            for b in _batches(len(prompts), cfg.batch_size, rng):
                loss = orchestrator_kl_loss(model.head(feats[b]), targets[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item() * len(b))
            history.append(sum(losses) / len(prompts))
        model.clear_cache()
        return history

    from preforch.models import make_accelerator

    accelerator = make_accelerator()
    model.encoder.requires_grad_(True)
    opt = torch.optim.AdamW([
        {"params": model.encoder.parameters(), "lr": cfg.encoder_learning_rate, "weight_decay": 0.01},
        {"params": model.head.parameters(), "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay},
    ])
    model, opt = accelerator.prepare(model, opt)
    inner = accelerator.unwrap_model(model)
    steps = cfg.num_epochs * math.ceil(len(prompts) / cfg.batch_size)
    bar = tqdm(total=steps, desc="orchestrator", disable=not progress or not accelerator.is_local_main_process)
    model.train()
    for _ in range(cfg.num_epochs):
        losses = []
        for b in _batches(len(prompts), cfg.batch_size, rng):
            mine = b[accelerator.process_index::accelerator.num_processes]
            # Through the (possibly DDP-wrapped) module, so gradients are averaged across processes.
            loss = orchestrator_kl_loss(model([prompts[i] for i in mine]), targets[mine].to(inner.device))
            accelerator.backward(loss)
            opt.step()
            opt.zero_grad()
            losses.append(loss.item() * len(b))
            bar.update(1)
        history.append(sum(losses) / len(prompts))
    bar.close()
    inner.eval()
    inner.clear_cache()
    return history


def train_orchestrator(cfg: OrchestratorConfig, ensemble: RewardEnsemble, data: PreferenceDataset,
                       progress: bool = True) -> tuple[PreferenceOrchestrator, dict]:
    """Targets from `ensemble` on `data`, a new orchestrator on `cfg.encoder`, fitted. Returns (model, info)."""
    model = PreferenceOrchestrator.from_encoder(cfg.encoder, ensemble.objectives, cfg.tau, cfg.pooling,
                                                cfg.max_length, cfg.trust_remote_code)  # first: fail fast on a bad path
    targets = preference_targets(ensemble, data, cfg.tau, progress)
    history = fit_orchestrator(model, data.prompts, targets, cfg, progress)
    return model, {"train_prompts": len(data), "loss_history": history, "mean_target": targets.mean(0).tolist()}
