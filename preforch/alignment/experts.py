"""`preforch train-experts`: one LoRA expert per objective on one base model, the experts Rewarded Soups merges
in weight space and MOD mixes at decoding time (DESIGN.md section 2).

Each expert trains on its own objective only: DPO on that objective's preference pairs (TRL's DPOTrainer,
the reference being the base model with the adapter off), or single-reward GRPO under that objective's reward
(train-policy's trainer). Then every expert is judged on every objective's held-out pairs by its implicit reward
beta * (log pi - log pi_ref): an expert should win on its own objective's pairs, and the table shows how far
the objectives pull apart.

OUTPUT_DIR: experts.json (written once every expert is saved, so a half-trained set is never read as one; the
held-out table is added to it last), README.md (its model card, written after that), experts/<objective>/ (peft
adapters, safetensors), training/<objective>/ (log.jsonl, checkpoints).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from preforch.alignment.config import ExpertsConfig, PolicyConfig
from preforch.alignment.implicit_reward import implicit_reward_accuracy, own_objective_accuracies, reply_logprobs
from preforch.alignment.trl_utils import LOG_FILE, device_args, jsonl_logger, lora_config, read_log, trl_config
from preforch.data.loaders import load_many
from preforch.data.schema import PreferenceDataset
from preforch.errors import ObjectiveMismatchError
from preforch.generation.expert_set import EXPERTS_FILE, ExpertSet, adapter_folder, write_expert_set
from preforch.hub import write_model_card
from preforch.io import atomic_directory


def grpo_config(cfg: ExpertsConfig, objective: str, train_data: str, work: Path) -> PolicyConfig:
    """train-policy's config for single-reward GRPO on `objective`, keeping a LoRA adapter (the expert)."""
    return PolicyConfig(method="single-reward", objective=objective, algorithm="grpo", policy=cfg.base_model,
                        ensemble=cfg.ensemble, orchestrator=None, train_data=[train_data],
                        max_prompts=cfg.max_train_pairs, output_dir=str(work), max_steps=cfg.max_steps,
                        learning_rate=cfg.learning_rate, per_device_train_batch_size=cfg.per_device_train_batch_size,
                        num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
                        beta=cfg.beta, use_lora=True, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                        save_steps=cfg.max_steps, report_to=cfg.report_to, seed=cfg.seed,
                        trust_remote_code=cfg.trust_remote_code, trl=cfg.trl)


def check_grpo_rewards(cfg: ExpertsConfig) -> None:
    """grpo: every objective must have a reward in the ensemble (`ObjectiveMismatchError` naming it)."""
    from preforch.rewards.ensemble import RewardEnsemble

    have = RewardEnsemble.load(cfg.ensemble).objectives
    missing = [o for o in cfg.objectives if o not in have]
    if missing:
        raise ObjectiveMismatchError(f"--objectives {missing}: no such reward in ensemble {cfg.ensemble} "
                                     f"(its objectives: {list(have)})")


def train_dpo_expert(cfg: ExpertsConfig, base: str, tokenizer, pairs: PreferenceDataset, work: Path) -> Path:
    """DPO on `pairs` with a fresh LoRA adapter on `base`; the adapter is saved to work/adapter."""
    from trl import DPOConfig, DPOTrainer

    args = trl_config(DPOConfig, dict(
        output_dir=str(work), max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size, beta=cfg.beta, max_length=cfg.max_length,
        logging_steps=1, save_strategy="no", report_to=cfg.report_to, seed=cfg.seed, **device_args(),
        model_init_kwargs={"trust_remote_code": cfg.trust_remote_code}), cfg.trl)
    trainer = DPOTrainer(model=base, args=args, train_dataset=pairs.to_hf().remove_columns("source"),
                         processing_class=tokenizer, peft_config=lora_config(True, cfg.lora_r, cfg.lora_alpha),
                         callbacks=[jsonl_logger(work / LOG_FILE)])
    trainer.train()
    if trainer.accelerator.is_main_process:  # under torchrun one rank writes; the others wait for it
        with atomic_directory(work / "adapter") as tmp:
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(tmp, safe_serialization=True)  # the adapter alone
    trainer.accelerator.wait_for_everyone()
    return work / "adapter"


def heldout_accuracy(experts: ExpertSet, heldout: dict[str, PreferenceDataset], beta: float, max_reply_tokens: int,
                     trust_remote_code: bool = False) -> dict[str, dict[str, dict[str, float]]]:
    """{expert objective: {data objective: implicit-reward accuracy and margin}}: every expert on every
    objective's held-out pairs, against the base model (adapters off) as the reference."""
    model, tok = experts.load(trust_remote_code)
    table: dict[str, dict[str, dict[str, float]]] = {o: {} for o in experts.objectives}
    for data_objective, pairs in heldout.items():
        prompts, chosen, rejected = pairs.prompts, [p.chosen for p in pairs], [p.rejected for p in pairs]

        def logprobs(replies: list[str]) -> torch.Tensor:
            return reply_logprobs(model, tok, prompts, replies, max_reply_tokens)

        with model.disable_adapter():
            ref_chosen, ref_rejected = logprobs(chosen), logprobs(rejected)
        for name, objective in zip(experts.names, experts.objectives):
            model.set_adapter(name, inference_mode=True)
            table[objective][data_objective] = implicit_reward_accuracy(logprobs(chosen), logprobs(rejected),
                                                                        ref_chosen, ref_rejected, beta)
    return table


def training_record(log: Path, seconds: float, batch_size: int) -> dict:
    """An expert's training as its log tells it: steps, first and last loss, samples (pairs for dpo,
    completions for grpo) and tokens seen (TRL's cumulative `num_tokens`), and wall seconds."""
    rows = read_log(log) if log.is_file() else []
    losses = [row["loss"] for row in rows if "loss" in row]
    tokens = [row["num_tokens"] for row in rows if "num_tokens" in row]
    return {"steps": len(losses), "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "samples": len(losses) * batch_size, "tokens": int(tokens[-1]) if tokens else None, "seconds": seconds,
            "log": str(log)}


def training_summary(cfg: ExpertsConfig, training: dict[str, dict], pairs: dict[str, int],
                     heldout_pairs: dict[str, int]) -> str:
    """How a train-experts set was trained, for its model card."""
    how = ("DPO on its objective's preference pairs (TRL DPOTrainer, the base model as the reference)"
           if cfg.method == "dpo" else
           f"single-reward GRPO under its objective's reward in the ensemble {cfg.ensemble} (train-policy's trainer, "
           f"{cfg.num_generations} completions per prompt)")
    unit, per_step = ("pairs", "pairs") if cfg.method == "dpo" else ("prompts", "completions")
    data = "; ".join(f"{o} from {spec} ({pairs[o]} {unit}, {training[o]['steps']} steps)"
                     for o, spec in zip(cfg.objectives, cfg.train_data))
    held = "; ".join(f"{o} from {spec} ({heldout_pairs[o]} pairs)" for o, spec in zip(cfg.objectives, cfg.eval_data))
    return (f"Each expert: a fresh LoRA adapter (r {cfg.lora_r}, alpha {cfg.lora_alpha}) on {cfg.base_model}, trained "
            f"by {how}; {cfg.per_device_train_batch_size} {per_step} per device per step, learning rate "
            f"{cfg.learning_rate}, beta {cfg.beta}, seed {cfg.seed}. Training data: {data}. Held out: each expert's "
            f"implicit-reward accuracy beta * (log pi_expert - log pi_base) on each objective's pairs ({held}); the "
            f"whole expert x objective table is in {EXPERTS_FILE}.")


def train_experts(cfg: ExpertsConfig) -> dict:
    """Train one expert per objective, judge each on every objective's held-out pairs, write OUTPUT_DIR.
    Bad input (data, ensemble, base model) fails before anything is written. Returns experts.json's record
    ({} on the other ranks under torchrun / accelerate launch, which train and write nothing)."""
    from transformers import AutoTokenizer

    from preforch.alignment.morlhf import train_policy
    from preforch.models import is_main_process, load_pretrained, resolve

    out = Path(cfg.output_dir)
    work = {o: out / "training" / o for o in cfg.objectives}
    if cfg.method == "grpo":
        check_grpo_rewards(cfg)
        rl = {o: grpo_config(cfg, o, spec, work[o]) for o, spec in zip(cfg.objectives, cfg.train_data)}  # checked now
    train = {o: load_many([spec], cfg.max_train_pairs, cfg.max_user_turns) for o, spec in zip(cfg.objectives, cfg.train_data)}
    heldout = {o: load_many([spec], cfg.max_eval_pairs) for o, spec in zip(cfg.objectives, cfg.eval_data)}
    base = resolve(cfg.base_model)
    tokenizer = load_pretrained(AutoTokenizer, base, "base model tokenizer", trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    if is_main_process():
        (out / EXPERTS_FILE).unlink(missing_ok=True)  # the old set, if any, is gone once retraining starts
    training = {}
    for objective in cfg.objectives:
        (work[objective] / LOG_FILE).unlink(missing_ok=True)
        start = time.perf_counter()
        if cfg.method == "dpo":
            adapter = train_dpo_expert(cfg, base, tokenizer, train[objective], work[objective])
        else:
            adapter = Path(train_policy(rl[objective], merge_lora=False)["policy"])
        if not is_main_process():  # the other ranks only train
            continue
        with atomic_directory(out / adapter_folder(objective)) as tmp:
            shutil.copytree(adapter, tmp, dirs_exist_ok=True)
        training[objective] = training_record(work[objective] / LOG_FILE, time.perf_counter() - start,
                                              cfg.per_device_train_batch_size)
    if not is_main_process():
        return {}
    record = {"beta": cfg.beta, "training": training, "config": asdict(cfg)}
    file = write_expert_set(out, cfg.base_model, cfg.objectives, cfg.method, **record)
    record["heldout_pairs"] = {o: len(p) for o, p in heldout.items()}
    record["heldout_accuracy"] = heldout_accuracy(ExpertSet.read(out), heldout, cfg.beta, cfg.max_reply_tokens,
                                                  cfg.trust_remote_code)
    write_expert_set(out, cfg.base_model, cfg.objectives, cfg.method, **record)
    write_model_card(out, "experts", cfg.base_model, cfg.train_data, cfg.objectives,
                     own_objective_accuracies(record["heldout_accuracy"], "expert"),
                     training_summary(cfg, training, {o: len(d) for o, d in train.items()}, record["heldout_pairs"]))
    return {"experts": str(file), **record}
