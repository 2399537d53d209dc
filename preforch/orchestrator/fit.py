"""Training the orchestrator (paper Eq. 6-8) and calibrating its temperature on validation pairs.

Two modes: with a frozen encoder (default) the prompts are encoded once and only the head trains, for
many epochs in seconds; with `train_encoder` the whole model trains through `accelerate`. A slice of the
training pairs (`validation_fraction`, chosen by hash) is kept out of training: it picks the temperature
of the predicted weights and the best fixed weight vector the orchestrator is compared with.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import torch
from tqdm.auto import tqdm

from preforch.data.schema import Message, PreferenceDataset, validation_split
from preforch.orchestrator.calibration import fit_temperature
from preforch.orchestrator.config import OrchestratorConfig
from preforch.orchestrator.human_labels import best_fixed_weights, human_label_table
from preforch.orchestrator.losses import orchestrator_loss
from preforch.orchestrator.model import PreferenceOrchestrator
from preforch.orchestrator.targets import implicit_preference_weights
from preforch.rewards.ensemble import REWARD_MODEL_ENCODER, RewardEnsemble, check_objectives, reward_model_encoder
from preforch.rewards.scores import Scores, as_scores


def encoder_for(name: str, ensemble: RewardEnsemble) -> str:
    """The encoder to load for `--encoder name`: the name itself, or for 'reward-model' the encoder folder of the
    ensemble's reward model (`reward_model_encoder`)."""
    return reward_model_encoder(ensemble) if name == REWARD_MODEL_ENCODER else name


def preference_targets(ensemble: RewardEnsemble, data: PreferenceDataset, tau: float, progress: bool = True) -> torch.Tensor:
    """w*(x) [N, K] from the normalised ensemble scores of each pair's chosen response (Eq. 6-7); 0 on an objective
    that does not apply to it."""
    normalized = ensemble.score(data.prompts, [p.chosen for p in data], progress=progress)
    return implicit_preference_weights(normalized, tau)


def training_scores(ensemble: RewardEnsemble, data: PreferenceDataset, cross_fit: bool,
                progress: bool = True) -> tuple[Scores, Scores]:
    """Normalised (chosen [N, K], rejected [N, K]) scores; cross-fitted (rewards/crossfit.py) if asked."""
    if cross_fit:
        from preforch.rewards.crossfit import cross_fitted_pair_scores

        return cross_fitted_pair_scores(ensemble, data, progress)
    return ensemble.score_pairs(data, progress)


def _batches(n: int, batch_size: int, rng: random.Random):
    idx = rng.sample(range(n), n)
    return [idx[s:s + batch_size] for s in range(0, n, batch_size)]


def fit_orchestrator(model: PreferenceOrchestrator, prompts: Sequence[Sequence[Message]], targets: torch.Tensor,
                     delta: Scores | torch.Tensor, cfg: OrchestratorConfig, progress: bool = True) -> list[float]:
    """Minimise `cfg.objective` over `prompts` (targets [N, K] for KL, from `implicit_preference_weights`; delta
    [N, K] = chosen - rejected normalised scores for Bradley-Terry, `Scores` or a plain tensor with every objective
    applying); returns the mean loss of each epoch, which also goes to `cfg.report_to`."""
    from accelerate.utils import set_seed

    if not len(prompts) == len(targets) == len(delta):
        raise ValueError(f"{len(prompts)} prompts, {len(targets)} targets, {len(delta)} score differences")
    from preforch.models import make_accelerator, start_tracking, stop_tracking, tracker_dir

    delta = as_scores(delta)
    set_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    model.clear_cache()
    history: list[float] = []
    accelerator = make_accelerator(cfg.report_to, tracker_dir(cfg.output_dir))  # data parallel when the encoder trains
    start_tracking(accelerator, "train-orchestrator", cfg)

    def loss_of(logits, idx):
        return orchestrator_loss(cfg.objective, logits, targets[idx].to(logits.device), delta[idx].to(logits.device),
                                 cfg.hybrid_weight)

    if not cfg.train_encoder:
        model.encoder.requires_grad_(False)
        feats = model.embed(prompts, progress=progress).to(model.device)
        opt = torch.optim.AdamW(model.head.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        for _ in tqdm(range(cfg.num_epochs), desc="orchestrator head", disable=not progress):
            losses = []
            for b in _batches(len(prompts), cfg.batch_size, rng):
                loss = loss_of(model.head(feats[b]), b)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item() * len(b))
            history.append(sum(losses) / len(prompts))
            accelerator.log({"loss": history[-1]}, step=len(history))
        model.clear_cache()
        stop_tracking(accelerator)
        return history

    model.clear_cache(features=True)  # the encoder is about to change
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
            loss = loss_of(model([prompts[i] for i in mine]), mine)
            accelerator.backward(loss)
            opt.step()
            opt.zero_grad()
            losses.append(loss.item() * len(b))
            bar.update(1)
        history.append(sum(losses) / len(prompts))
        accelerator.log({"loss": history[-1]}, step=len(history))
    bar.close()
    stop_tracking(accelerator)
    inner.eval()
    inner.clear_cache(features=True)
    return history


def calibrate(model: PreferenceOrchestrator, validation: PreferenceDataset, delta: Scores | torch.Tensor,
              fit: bool) -> dict:
    """On validation pairs (delta [V, K]): set the temperature (if `fit`), store the best fixed vector in
    the model's metadata, and report the human-label accuracy table there."""
    info: dict = {"pairs": len(validation)}
    if fit:
        temperature, nll = fit_temperature(model.logits(validation.prompts), delta)
        model.set_temperature(temperature)
        info["temperature"] = temperature
        info["label_nll_by_temperature"] = {str(t): v for t, v in nll.items()}
    best, _ = best_fixed_weights(delta)
    model.metadata["best_fixed_validation"] = dict(zip(model.objectives, best.tolist()))
    info["human_labels"] = human_label_table(delta, model.objectives, {"orchestrator": model.predict(validation.prompts)},
                                             validation.sources)
    return info


def train_orchestrator(cfg: OrchestratorConfig, ensemble: RewardEnsemble, data: PreferenceDataset,
                       progress: bool = True, model: PreferenceOrchestrator | None = None) -> tuple[PreferenceOrchestrator, dict]:
    """A new orchestrator on `cfg.encoder` (or the untrained `model` given, e.g. a `sibling()` sharing an
    encoder), fitted on `data` minus its validation slice, then calibrated on that slice. Returns (model, info)."""
    if model is None:  # first: fail fast on a bad path
        model = PreferenceOrchestrator.from_encoder(encoder_for(cfg.encoder, ensemble), ensemble.objectives, cfg.tau, cfg.pooling,
                                                    cfg.max_length, cfg.trust_remote_code)
    else:
        check_objectives(ensemble.objectives, model.objectives, "orchestrator")
        model.tau = cfg.tau
    train_idx, val_idx = validation_split(data, cfg.validation_fraction)
    chosen, rejected = training_scores(ensemble, data, cfg.cross_fit, progress)
    delta = chosen - rejected
    if cfg.targets == "raw":  # the paper's Eq. 7 as written: a softmax over raw scores of unequal scales
        chosen = ensemble.score_raw(data.prompts, [p.chosen for p in data], progress)
    targets = implicit_preference_weights(chosen[train_idx], cfg.tau)
    train = data.subset(train_idx)
    history = fit_orchestrator(model, train.prompts, targets, delta[train_idx], cfg, progress)
    info = {"train_prompts": len(train), "loss_history": history, "mean_target": targets.mean(0).tolist(),
            "cross_fit": cfg.cross_fit, "objective": cfg.objective}
    if val_idx:
        info["validation"] = calibrate(model, data.subset(val_idx), delta[val_idx], cfg.calibrate_temperature)
    return model, info
