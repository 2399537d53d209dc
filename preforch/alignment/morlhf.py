"""`preforch train-policy`: Pro-MORLHF, MORLHF and single-reward RL through TRL.

`train_policy` runs the method its config names, a row of alignment/methods.py, under the training signal its
`--algorithm` names, a row of alignment/algorithms.py (GRPO, RLOO, ...). The three here are
`WeightedMethod`s, which differ only in the `weights` column of the prompt dataset (`ProMorlhf`, `Morlhf`,
`SingleReward`); `moslim` (alignment/moslim.py) swaps both the dataset (tagged prompts) and the reward (the
classifier's mapping).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch

from preforch.alignment.config import PolicyConfig
from preforch.alignment.algorithms import algorithm_class
from preforch.alignment.methods import PolicySetup, TrainingMethod, method_class
from preforch.alignment.rewards import CombinedReward, ObjectiveReward
from preforch.alignment.trl_utils import (LOG_FILE, check_trl_fields, device_args, jsonl_logger, lora_config, rl_prompts,
                                         memory_releaser, save_policy, trl_config)
from preforch.errors import ConfigError
from preforch.hub import model_card
from preforch.io import read_json
from preforch.orchestrator.preference import load_orchestrator, preference_weights
from preforch.rewards.ensemble import RewardEnsemble
from preforch.tables import load_attr

BEST_FIXED = "best-fixed"  # rl-compare's morlhf:best-fixed arm


def method_weights(cfg: PolicyConfig, ensemble: RewardEnsemble, prompts) -> torch.Tensor:
    """The weight vector of every prompt under `cfg.method` (a `WeightedMethod`): [P, K], rows on the simplex."""
    return method_class(cfg.method).weights(cfg, ensemble, prompts)


class WeightedMethod(TrainingMethod):
    """A method rewarding each completion by the ensemble's normalised scores under its prompt's weights
    (`CombinedReward`); subclasses say only how a prompt is weighted."""

    @classmethod
    def weights(cls, cfg: PolicyConfig, ensemble: RewardEnsemble, prompts) -> torch.Tensor:
        """[P, K] weights of `prompts`, rows on the simplex."""
        raise NotImplementedError

    @classmethod
    def weighting(cls, cfg: PolicyConfig) -> str:
        """How the model card names the weighting."""
        raise NotImplementedError

    @classmethod
    def setup(cls, cfg: PolicyConfig, tokenizer) -> PolicySetup:
        from datasets import Dataset

        ensemble = RewardEnsemble.load(cfg.ensemble)
        prompts, sources = rl_prompts(cfg, tokenizer)
        weights = cls.weights(cfg, ensemble, prompts)  # bad weights/objectives fail before the policy model loads
        dataset = Dataset.from_dict({"prompt": [list(p) for p in prompts], "weights": weights.tolist(), "source": sources})
        return PolicySetup(dataset, CombinedReward(ensemble), list(ensemble.objectives),
                           f"{cls.weighting(cfg)} over the normalised scores of {cfg.ensemble}",
                           objective_rewards=[ObjectiveReward(ensemble, o) for o in ensemble.objectives])


class ProMorlhf(WeightedMethod):
    """The orchestrator's f_phi(x) per prompt (paper Eq. 9), predicted once and cached; `--weight_temperature`
    replaces its calibrated temperature (rl-compare arm `pro-morlhf:temperature=0.2`: sharper weights)."""

    arm_setting = "temperature=<T>"

    @classmethod
    def weights(cls, cfg, ensemble, prompts):
        if not cfg.orchestrator:
            raise ConfigError("pro-morlhf needs --orchestrator DIR")
        orchestrator = load_orchestrator(cfg.orchestrator, ensemble.objectives)
        if cfg.weight_temperature is not None:
            orchestrator.set_temperature(cfg.weight_temperature)
        return preference_weights(None, prompts, ensemble.objectives, orchestrator)

    @classmethod
    def weighting(cls, cfg):
        temperature = f" at temperature {cfg.weight_temperature:g}" if cfg.weight_temperature is not None else ""
        return f"the orchestrator's per-prompt weights{temperature} (Pro-MORLHF, PRO Eq. 9)"

    @classmethod
    def arm_config(cls, cfg, setting):
        name, _, value = setting.partition("=")
        try:
            temperature = float(value) if name == "temperature" else None
        except ValueError:
            temperature = None
        if temperature is None:
            raise ConfigError(f"methods: pro-morlhf:{setting}: expected pro-morlhf:{cls.arm_setting}, e.g. "
                              "pro-morlhf:temperature=0.2")
        return {"weight_temperature": temperature}


class Morlhf(WeightedMethod):
    """One user-given vector for every prompt (default uniform), or a partial one (`harmless=0.5,auto`) whose free
    objectives the orchestrator fills per prompt."""

    arm_setting = f"<uniform|{BEST_FIXED}|weights>"
    rl_compare_baseline = True

    @classmethod
    def weights(cls, cfg, ensemble, prompts):
        objectives = ensemble.objectives
        if not cfg.weights:
            return torch.full((len(prompts), len(objectives)), 1 / len(objectives))
        return preference_weights(cfg.weights, prompts, objectives, cfg.orchestrator)

    @classmethod
    def weighting(cls, cfg):
        return f"fixed weights {cfg.weights or 'uniform'} (MORLHF)"

    @classmethod
    def arm_config(cls, cfg, setting):
        return {"weights": None if setting == "uniform" else best_fixed_spec(cfg.orchestrator) if setting == BEST_FIXED
                else setting}


def best_fixed_spec(orchestrator: str | None) -> str:
    """The fixed vector train-orchestrator chose on its validation slice, as a --weights spec."""
    from preforch.orchestrator.model import PreferenceOrchestrator

    file = Path(orchestrator or "") / PreferenceOrchestrator.CONFIG_FILE
    fixed = read_json(file).get("metadata", {}).get("best_fixed_validation") if file.is_file() else None
    if not fixed:
        raise ConfigError(f"morlhf:{BEST_FIXED}: {file} records no best fixed vector (train-orchestrator with "
                          "--validation_fraction > 0 chooses one)")
    return ",".join(f"{o}={w!r}" for o, w in fixed.items())


class SingleReward(WeightedMethod):
    """A one-hot vector on one objective."""

    arm_setting = "<objective>"

    @classmethod
    def weights(cls, cfg, ensemble, prompts):
        objectives = ensemble.objectives
        if cfg.objective not in objectives:
            raise ConfigError(f"single-reward needs --objective, one of {list(objectives)}; got {cfg.objective!r}")
        w = torch.zeros(len(prompts), len(objectives))
        w[:, objectives.index(cfg.objective)] = 1.0
        return w

    @classmethod
    def weighting(cls, cfg):
        return f"{cfg.objective} alone"

    @classmethod
    def arm_config(cls, cfg, setting):
        return {"objective": setting}


def train_policy(cfg: PolicyConfig, callbacks: tuple = (), merge_lora: bool = True) -> dict:
    """Run RL and save the final (LoRA-merged) policy to OUTPUT_DIR/policy, loadable by from_pretrained; with
    `use_lora` and not `merge_lora`, the LoRA adapter alone (a per-objective expert). Extra
    `transformers.TrainerCallback`s (e.g. timers) are passed to the trainer."""
    from transformers import AutoTokenizer

    from preforch.models import load_pretrained, resolve

    algorithm = algorithm_class(cfg.algorithm)
    config_class = load_attr(algorithm.config_class)
    check_trl_fields(config_class, cfg.trl)  # before any model loads
    out = Path(cfg.output_dir)
    policy = resolve(cfg.policy)
    tok = load_pretrained(AutoTokenizer, policy, "policy tokenizer", trust_remote_code=cfg.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    setup = method_class(cfg.method).setup(cfg, tok)
    has_field = {f.name for f in fields(config_class)}  # OnlineDPOConfig has no pad_to_multiple_of: it pads no lengths
    common = dict(output_dir=str(out), max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
                  per_device_train_batch_size=cfg.per_device_train_batch_size, logging_steps=cfg.logging_steps,
                  save_steps=cfg.save_steps, report_to=cfg.report_to, seed=cfg.seed,
                  **{k: v for k, v in device_args(cfg.pad_to_multiple_of).items() if k in has_field},
                  model_init_kwargs={"trust_remote_code": cfg.trust_remote_code}, **algorithm.config_fields(cfg))
    trainer = algorithm.trainer(cfg, policy, setup, trl_config(config_class, common, cfg.trl), tok,
                                lora_config(cfg.use_lora, cfg.lora_r, cfg.lora_alpha),
                                [jsonl_logger(out / LOG_FILE), memory_releaser(), *callbacks])
    has_checkpoint = any(out.glob("checkpoint-*"))
    if cfg.resume and not has_checkpoint:
        raise ConfigError(f"--resume: no checkpoint-* folder in {out}")
    trainer.train(resume_from_checkpoint=True if cfg.resume else None)
    card = model_card("policy", cfg.policy, cfg.train_data, setup.objectives, {},
                      f"{cfg.algorithm.upper()} (TRL{', ' + cfg.aggregation if cfg.algorithm == 'grpo' else ''}) for "
                      f"{trainer.state.global_step} steps on prompts of "
                      f"{', '.join(cfg.train_data)}, rewarded by {setup.rewarded_by}; KL coefficient {cfg.beta}, learning "
                      f"rate {cfg.learning_rate}, LoRA {cfg.use_lora}, seed {cfg.seed}.")
    save_policy(trainer, tok, out / "policy", merge_lora=cfg.use_lora and merge_lora, extra_json=setup.extra_json, card=card)
    return {"steps": trainer.state.global_step, "policy": str(out / "policy"), "log": str(out / LOG_FILE)}
