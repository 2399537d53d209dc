"""`preforch train-policy`: Pro-MORLHF, MORLHF and single-reward RL on TRL's GRPOTrainer / RLOOTrainer.

The three methods differ only in the `weights` column of the prompt dataset:
- pro-morlhf: the orchestrator's f_phi(x) per prompt (paper Eq. 9), predicted once and cached;
- morlhf: one user-given vector for every prompt (default uniform), or a partial one (`harmless=0.5,auto`)
  whose free objectives the orchestrator fills per prompt;
- single-reward: a one-hot vector on one objective.
`moslim` (alignment/moslim.py) swaps both the dataset (tagged prompts) and the reward (the classifier's mapping).
"""

from __future__ import annotations

from pathlib import Path

import torch

from preforch.alignment.config import PolicyConfig
from preforch.alignment.trl_utils import (LOG_FILE, check_trl_fields, device_args, jsonl_logger, lora_config, rl_prompts,
                                         memory_releaser, save_policy, trl_config)
from preforch.errors import ConfigError
from preforch.hub import model_card
from preforch.orchestrator.preference import preference_weights
from preforch.rewards.ensemble import RewardEnsemble


def method_weights(cfg: PolicyConfig, ensemble: RewardEnsemble, prompts) -> torch.Tensor:
    """The weight vector of every prompt under `cfg.method`: [P, K], rows on the simplex."""
    objectives, p = ensemble.objectives, len(prompts)
    if cfg.method == "pro-morlhf":
        if not cfg.orchestrator:
            raise ConfigError("pro-morlhf needs --orchestrator DIR")
        return preference_weights(None, prompts, objectives, cfg.orchestrator)
    if cfg.method == "morlhf":
        if not cfg.weights:
            return torch.full((p, len(objectives)), 1 / len(objectives))
        return preference_weights(cfg.weights, prompts, objectives, cfg.orchestrator)
    if cfg.objective not in objectives:
        raise ConfigError(f"single-reward needs --objective, one of {list(objectives)}; got {cfg.objective!r}")
    w = torch.zeros(p, len(objectives))
    w[:, objectives.index(cfg.objective)] = 1.0
    return w


def prompt_dataset(cfg: PolicyConfig, ensemble: RewardEnsemble, tokenizer):
    """`datasets.Dataset` with `prompt` (chat messages) and `weights` columns, plus `source`."""
    from datasets import Dataset

    prompts, sources = rl_prompts(cfg, tokenizer)
    weights = method_weights(cfg, ensemble, prompts)
    return Dataset.from_dict({"prompt": [list(p) for p in prompts], "weights": weights.tolist(), "source": sources})


def train_policy(cfg: PolicyConfig, callbacks: tuple = (), merge_lora: bool = True) -> dict:
    """Run RL and save the final (LoRA-merged) policy to OUTPUT_DIR/policy, loadable by from_pretrained; with
    `use_lora` and not `merge_lora`, the LoRA adapter alone (a per-objective expert). Extra
    `transformers.TrainerCallback`s (e.g. timers) are passed to the trainer."""
    from transformers import AutoTokenizer

    from preforch.alignment.rewards import CombinedReward
    from preforch.models import load_pretrained, resolve

    if cfg.algorithm == "grpo":
        from trl import GRPOConfig as Config, GRPOTrainer as Trainer
    else:
        from trl import RLOOConfig as Config, RLOOTrainer as Trainer
    check_trl_fields(Config, cfg.trl)  # before any model loads
    out = Path(cfg.output_dir)
    policy = resolve(cfg.policy)
    tok = load_pretrained(AutoTokenizer, policy, "policy tokenizer", trust_remote_code=cfg.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if cfg.method == "moslim":
        from preforch.alignment.moslim import moslim_setup

        dataset, reward, extra_json = moslim_setup(cfg, tok)
    else:
        ensemble = RewardEnsemble.load(cfg.ensemble)
        # fails on bad weights/objectives before the policy model loads
        dataset, reward, extra_json = prompt_dataset(cfg, ensemble, tok), CombinedReward(ensemble), None
    common = dict(output_dir=str(out), max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
                  per_device_train_batch_size=cfg.per_device_train_batch_size, num_generations=cfg.num_generations,
                  max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, beta=cfg.beta,
                  logging_steps=cfg.logging_steps, save_steps=cfg.save_steps, report_to=cfg.report_to, seed=cfg.seed,
                  use_vllm=cfg.use_vllm, **device_args(cfg.pad_to_multiple_of), model_init_kwargs={"trust_remote_code": cfg.trust_remote_code})
    trainer = Trainer(model=policy, reward_funcs=[reward], args=trl_config(Config, common, cfg.trl),
                      train_dataset=dataset, processing_class=tok, peft_config=lora_config(cfg.use_lora, cfg.lora_r, cfg.lora_alpha),
                      callbacks=[jsonl_logger(out / LOG_FILE), memory_releaser(), *callbacks])
    has_checkpoint = any(out.glob("checkpoint-*"))
    if cfg.resume and not has_checkpoint:
        raise ConfigError(f"--resume: no checkpoint-* folder in {out}")
    trainer.train(resume_from_checkpoint=True if cfg.resume else None)
    weighting = {"pro-morlhf": "the orchestrator's per-prompt weights (Pro-MORLHF, PRO Eq. 9)",
                 "morlhf": f"fixed weights {cfg.weights or 'uniform'} (MORLHF)",
                 "single-reward": f"{cfg.objective} alone", "moslim": "MOSLIM's prompt-stated objectives"}[cfg.method]
    card = model_card("policy", cfg.policy, cfg.train_data, [] if cfg.method == "moslim" else list(ensemble.objectives), {},
                      f"{cfg.algorithm.upper()} (TRL) for {trainer.state.global_step} steps on prompts of "
                      f"{', '.join(cfg.train_data)}, rewarded by {weighting} over the normalised scores of "
                      f"{cfg.ensemble if cfg.method != 'moslim' else cfg.classifier}; KL coefficient {cfg.beta}, learning "
                      f"rate {cfg.learning_rate}, LoRA {cfg.use_lora}, seed {cfg.seed}.")
    save_policy(trainer, tok, out / "policy", merge_lora=cfg.use_lora and merge_lora, extra_json=extra_json, card=card)
    return {"steps": trainer.state.global_step, "policy": str(out / "policy"), "log": str(out / LOG_FILE)}
