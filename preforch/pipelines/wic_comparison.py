"""`preforch wic-compare`: Pro-WiC vs RiC-online vs RiC-offline at one budget, and with `--expert_data` Rewarded
Soups and MOD beside them (the paper's Tables 1-4 and Figure 2 at small scale).

Arms, all from the same start model:
- pro-wic: offline SFT on self-weights (Eq. 10), then online rounds sampling under the orchestrator's f_phi(x);
- ric-online: offline SFT on target scores, then the same online rounds under random preferences (RiC; Dirichlet by
  default, RiC's own goals with --ric_preferences ric-goals);
- with --online_filters naming offline-thresholds too: a Pro-WiC and a RiC-online arm whose online rounds use the
  earlier filter, on the same offline stages (old vs new filter);
- ric-offline, pro-wic-offline: each one's offline policy, trained on offline data for as many more SFT steps as
  the online rounds take, so every arm gets the same number of SFT steps: offline is compared with offline
  (Pro-WiC's self-weights against RiC's target scores), online with online;
- soups, mod: one LoRA expert per objective, DPO on that objective's pairs (`train-experts`; by default the
  WiC arms' SFT steps split evenly between the experts), merged in weight space (soups) or mixed at decoding
  time (mod); the two arms share the one expert set and its training compute.
Each arm is judged with `evaluate` (its kind) on the same held-out prompts, grid and judge; `compare` draws
the fronts. Finished stages are reused, online stages continue after their last finished iteration;
`--overwrite` redoes everything.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, fields
from pathlib import Path

from preforch.alignment.config import ExpertsConfig, WicConfig
from preforch.alignment.wic import RUN_FILE
from preforch.errors import ObjectiveMismatchError
from preforch.evaluation.config import EvaluateConfig
from preforch.evaluation.pareto import reference_point_or_default
from preforch.generation.expert_set import EXPERTS_FILE
from preforch.io import atomic_write_json, atomic_write_text
from preforch.pipelines.config import WicComparisonConfig
from preforch.pipelines.rl_comparison import check_judge_held_out
from preforch.pipelines.wic_comparison_report import render_report

EXPERT_ARMS = ("soups", "mod")  # kinds serving the one expert set in OUTPUT_DIR/experts


def online_suffix(online_filter: str) -> str:
    """'' for RiC's filter (the default arms keep their names), else ' (<filter>)' / '-<filter>' in folders."""
    return "" if online_filter == "ric" else f" ({online_filter})"


def arm_stages(cfg: WicComparisonConfig) -> dict[str, tuple[str, ...]]:
    """arm -> its train-wic stages in order (keys of `stage_plan`); the last one's policy is the arm's policy. Each
    online filter beyond RiC's adds its own Pro-WiC and RiC-online arms on the same offline stages."""
    arms = {}
    for f in cfg.online_filters:
        folder = "online" if f == "ric" else f"online-{f}"
        arms[f"pro-wic{online_suffix(f)}"] = ("pro-wic/offline", f"pro-wic/{folder}")
        arms[f"ric-online{online_suffix(f)}"] = ("ric/offline", f"ric/{folder}")
    return {**arms, "pro-wic-offline": ("pro-wic/offline", "pro-wic/offline-more"),
            "ric-offline": ("ric/offline", "ric/offline-more")}


def wic_config(cfg: WicComparisonConfig, **changes) -> WicConfig:
    """A train-wic config with every shared option of `cfg`, then `changes`."""
    return WicConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(WicConfig)}, **changes})


def stage_plan(cfg: WicComparisonConfig) -> dict[str, WicConfig]:
    """Folder name -> train-wic config, in the order they must run."""
    out = Path(cfg.output_dir)
    extra_steps = cfg.iterations * cfg.sft_steps_per_iteration
    plan = {"pro-wic/offline": wic_config(cfg, method="pro-wic", stage="offline", resume=False,
                                          output_dir=str(out / "pro-wic/offline")),
            "ric/offline": wic_config(cfg, method="ric", stage="offline", resume=False, output_dir=str(out / "ric/offline"))}
    for f in cfg.online_filters:
        folder = "online" if f == "ric" else f"online-{f}"
        plan[f"pro-wic/{folder}"] = wic_config(cfg, method="pro-wic", stage="online", preference_source="orchestrator",
                                               online_filter=f, policy=str(out / "pro-wic/offline/policy"),
                                               output_dir=str(out / "pro-wic" / folder))
        plan[f"ric/{folder}"] = wic_config(cfg, method="ric", stage="online", preference_source=cfg.ric_preferences,
                                           online_filter=f, policy=str(out / "ric/offline/policy"),
                                           output_dir=str(out / "ric" / folder))
    for method, folder in (("pro-wic", "pro-wic"), ("ric", "ric")):
        plan[f"{folder}/offline-more"] = wic_config(cfg, method=method, stage="offline", resume=False,
                                                    max_steps=extra_steps, policy=str(out / folder / "offline/policy"),
                                                    output_dir=str(out / folder / "offline-more"))
    return plan


def experts_config(cfg: WicComparisonConfig, objectives: tuple[str, ...]) -> ExpertsConfig:
    """train-experts for the soups and mod arms: the WiC arms' start model, turn filter and (unless --expert_pairs)
    pairs per source; `ObjectiveMismatchError` unless --expert_data gives one spec per objective."""
    if len(cfg.expert_data) != len(objectives):
        raise ObjectiveMismatchError(f"expert_data: one training-data spec per ensemble objective {list(objectives)} "
                                     f"(in that order), got {len(cfg.expert_data)}: {cfg.expert_data}")
    steps = cfg.expert_steps or max(1, (cfg.max_steps + cfg.iterations * cfg.sft_steps_per_iteration) // len(objectives))
    return ExpertsConfig(base_model=cfg.policy, objectives=list(objectives), train_data=cfg.expert_data,
                         eval_data=cfg.expert_eval_data, max_train_pairs=cfg.expert_pairs or cfg.max_pairs,
                         max_user_turns=cfg.max_user_turns,
                         max_steps=steps, learning_rate=cfg.expert_learning_rate,
                         per_device_train_batch_size=cfg.per_device_train_batch_size, max_length=cfg.max_length,
                         lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, output_dir=str(Path(cfg.output_dir) / "experts"),
                         report_to=cfg.report_to, seed=cfg.seed, trust_remote_code=cfg.trust_remote_code)


def _finished(stage: WicConfig) -> dict | None:
    """The stage's accounting if it ran to the end, else None."""
    file = Path(stage.output_dir) / RUN_FILE
    record = json.loads(file.read_text()).get(stage.stage) if file.is_file() else None
    if record and (stage.stage == "offline" or len(record["iterations"]) == stage.iterations):
        return record
    return None


def _accounting(records: list[dict]) -> dict:
    """Generated samples, kept fraction, SFT steps/tokens and wall seconds summed over an arm's stages."""
    total = {"generated": 0, "kept": 0, "sft_steps": 0, "sft_tokens": 0, "seconds": 0.0}
    for r in records:
        parts = r["iterations"] if "iterations" in r else [r]
        for p in parts:
            total["generated"] += p.get("generated", 0)
            total["kept"] += p.get("kept", 0)
            total["sft_steps"] += p.get("sft_steps", 0)
            total["sft_tokens"] += p.get("sft_tokens", 0)
            total["seconds"] += sum(p.get(k, 0.0) for k in ("generation_seconds", "scoring_seconds", "sft_seconds"))
        total["seconds"] += r.get("scoring_seconds", 0.0) + r.get("offline_scoring_seconds", 0.0)
    total["kept_fraction"] = total["kept"] / total["generated"] if total["generated"] else None
    return total


def _experts_accounting(record: dict) -> dict:
    """The expert set's training as `_accounting` counts it: DPO pairs are its samples (none generated)."""
    parts = record["training"].values()
    return {"generated": 0, "kept": 0, "kept_fraction": None, "sft_steps": sum(p["steps"] for p in parts),
            "sft_tokens": sum(p["tokens"] or 0 for p in parts), "seconds": sum(p["seconds"] for p in parts),
            "shared_with": list(EXPERT_ARMS)}


def _train_experts(cfg: ExpertsConfig) -> dict:
    """The expert set's experts.json record, training it unless a finished one (with its held-out table) is there."""
    from preforch.alignment.experts import train_experts

    file = Path(cfg.output_dir) / EXPERTS_FILE
    record = json.loads(file.read_text()) if file.is_file() else {}
    if "heldout_accuracy" not in record:
        print("\n=== train-experts (soups, mod) ===", flush=True)
        record = train_experts(cfg)
    return record


def run_wic_comparison(cfg: WicComparisonConfig) -> dict:
    from preforch.alignment.wic_train import train_wic
    from preforch.evaluation.compare import compare_runs
    from preforch.evaluation.harness import run_evaluation
    from preforch.orchestrator.preference import load_orchestrator
    from preforch.rewards.ensemble import RewardEnsemble

    out = Path(cfg.output_dir)
    objectives = RewardEnsemble.load(cfg.ensemble).objectives
    reference = reference_point_or_default(cfg.reference_point, len(objectives))
    # Everything that can mismatch fails now, not after the first stages have trained.
    load_orchestrator(cfg.orchestrator, objectives)
    experts = experts_config(cfg, objectives) if cfg.expert_data else None
    if cfg.judge:
        RewardEnsemble.load(cfg.judge)
        check_judge_held_out(cfg.judge, cfg.eval_data)
    if cfg.overwrite:
        for name in ("pro-wic", "ric", "experts", "eval", "compare"):
            shutil.rmtree(out / name, ignore_errors=True)

    plan = stage_plan(cfg)
    records = {}
    for name, stage in plan.items():
        records[name] = _finished(stage)
        if records[name] is None:
            print(f"\n=== train-wic {name} ===", flush=True)
            if not stage.resume:  # an offline stage has no checkpoints: it restarts from its start model
                shutil.rmtree(stage.output_dir, ignore_errors=True)
            train_wic(stage)
            records[name] = _finished(stage)
    arms = arm_stages(cfg)
    served = {arm: (str(Path(plan[stages[-1]].output_dir) / "policy"), "wic") for arm, stages in arms.items()}
    compute = {arm: _accounting([records[s] for s in stages]) for arm, stages in arms.items()}
    expert_record = None
    if experts:
        expert_record = _train_experts(experts)
        for arm in EXPERT_ARMS:
            served[arm], compute[arm] = (experts.output_dir, arm), _experts_accounting(expert_record)

    evaluations = {}
    for arm, (policy, method) in served.items():
        folder = out / "eval" / arm
        if not (folder / "evaluation.json").is_file():
            print(f"\n=== evaluate --method {method}: {arm} ===", flush=True)
            run_evaluation(EvaluateConfig(
                policy=policy, method=method, ensemble=cfg.ensemble, judge=cfg.judge, orchestrator=cfg.orchestrator,
                eval_data=cfg.eval_data, prompts_per_source=cfg.eval_prompts_per_source, grid_divisions=cfg.grid_divisions,
                reference_point=reference, max_new_tokens=cfg.max_new_tokens, temperature=cfg.eval_temperature,
                top_p=cfg.top_p, batch_size=cfg.eval_batch_size,
                seed=cfg.seed if cfg.eval_seed is None else cfg.eval_seed, output_dir=str(folder),
                trust_remote_code=cfg.trust_remote_code))
        evaluations[arm] = json.loads((folder / "evaluation.json").read_text())
    compare_runs([str(out / "eval" / arm) for arm in served], out / "compare")

    result = {"config": asdict(cfg), "objectives": objectives, "reference_point": reference,
              "judge": cfg.judge or cfg.ensemble,
              "arms": {arm: {"hypervolume": e["hypervolume"], "num_prompts": e["num_prompts"],
                             "equal_weights": next(r for r in e["rows"] if r["label"] == "uniform"),
                             "orchestrator_weights": next((r for r in e["rows"] if r["label"] == "orchestrator"), None),
                             "steering": e["steering"], "tag_reading": e.get("tag_reading"), "compute": compute[arm]}
                       for arm, e in evaluations.items()},
              "experts": expert_record and {k: expert_record[k] for k in ("training", "heldout_pairs", "heldout_accuracy")},
              "comparison": str(out / "compare" / "comparison.json")}
    atomic_write_json(out / "wic_comparison.json", result)
    atomic_write_text(out / "report.md", render_report(result))
    return result
