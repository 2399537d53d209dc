"""`preforch wic-compare`: Pro-WiC vs RiC-online vs RiC-offline at one budget (the paper's Tables 1-4 and
Figure 2 at small scale).

Arms, all from the same start model, offline data and offline SFT steps:
- pro-wic: offline SFT on self-weights (Eq. 10), then online rounds sampling under the orchestrator's f_phi(x);
- ric-online: offline SFT on target scores, then the same online rounds under random preferences (RiC);
- ric-offline: the RiC offline policy, trained on offline data for as many more SFT steps as the online
  rounds take, so every arm gets the same number of SFT steps.
Each arm is judged with `evaluate --method wic` on the same held-out prompts and grid; `compare` draws the
fronts. Finished stages are reused, online stages continue after their last finished iteration;
`--overwrite` redoes everything.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, fields
from pathlib import Path

from preforch.alignment.wic import RUN_FILE
from preforch.config import EvaluateConfig, WicComparisonConfig, WicConfig
from preforch.evaluation.pareto import reference_point_or_default
from preforch.evaluation.report import steering_gain
from preforch.io import atomic_write_json, atomic_write_text

# arm -> its train-wic stages in order (keys of `stage_plan`); the last one's policy is the arm's policy
ARM_STAGES = {"pro-wic": ("pro-wic/offline", "pro-wic/online"), "ric-online": ("ric/offline", "ric/online"),
              "ric-offline": ("ric/offline", "ric/offline-more")}


def wic_config(cfg: WicComparisonConfig, **changes) -> WicConfig:
    """A train-wic config with every shared option of `cfg`, then `changes`."""
    return WicConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(WicConfig)}, **changes})


def stage_plan(cfg: WicComparisonConfig) -> dict[str, WicConfig]:
    """Folder name -> train-wic config, in the order they must run."""
    out = Path(cfg.output_dir)
    extra_steps = cfg.iterations * cfg.sft_steps_per_iteration
    return {
        "pro-wic/offline": wic_config(cfg, method="pro-wic", stage="offline", resume=False, output_dir=str(out / "pro-wic/offline")),
        "pro-wic/online": wic_config(cfg, method="pro-wic", stage="online", preference_source="orchestrator",
                                     policy=str(out / "pro-wic/offline/policy"), output_dir=str(out / "pro-wic/online")),
        "ric/offline": wic_config(cfg, method="ric", stage="offline", resume=False, output_dir=str(out / "ric/offline")),
        "ric/online": wic_config(cfg, method="ric", stage="online", preference_source="random",
                                 policy=str(out / "ric/offline/policy"), output_dir=str(out / "ric/online")),
        "ric/offline-more": wic_config(cfg, method="ric", stage="offline", resume=False, max_steps=extra_steps,
                                       policy=str(out / "ric/offline/policy"), output_dir=str(out / "ric/offline-more")),
    }


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


def run_wic_comparison(cfg: WicComparisonConfig) -> dict:
    from preforch.alignment.wic import train_wic
    from preforch.evaluation.compare import compare_runs
    from preforch.evaluation.harness import run_evaluation
    from preforch.orchestrator.preference import load_orchestrator
    from preforch.rewards.ensemble import RewardEnsemble

    out = Path(cfg.output_dir)
    objectives = RewardEnsemble.load(cfg.ensemble).objectives
    k = len(objectives)
    reference = reference_point_or_default(cfg.reference_point, k)
    # Pro-WiC's online stage needs it; a mismatch must fail now, not after the offline stages have trained.
    load_orchestrator(cfg.orchestrator, objectives)
    if cfg.overwrite:
        for name in ("pro-wic", "ric", "eval", "compare"):
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

    evaluations = {}
    for arm, stages in ARM_STAGES.items():
        folder = out / "eval" / arm
        if not (folder / "evaluation.json").is_file():
            print(f"\n=== evaluate --method wic: {arm} ===", flush=True)
            run_evaluation(EvaluateConfig(
                policy=str(Path(plan[stages[-1]].output_dir) / "policy"), method="wic", ensemble=cfg.ensemble,
                orchestrator=cfg.orchestrator, eval_data=cfg.eval_data, prompts_per_source=cfg.eval_prompts_per_source,
                grid_divisions=cfg.grid_divisions, reference_point=reference, max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.eval_temperature, top_p=cfg.top_p, batch_size=cfg.eval_batch_size, seed=cfg.seed,
                output_dir=str(folder), trust_remote_code=cfg.trust_remote_code))
        evaluations[arm] = json.loads((folder / "evaluation.json").read_text())
    compare_runs([str(out / "eval" / arm) for arm in ARM_STAGES], out / "compare")

    result = {"config": asdict(cfg), "objectives": evaluations["pro-wic"]["objectives"], "reference_point": reference,
              "arms": {arm: {"hypervolume": evaluations[arm]["hypervolume"],
                             "equal_weights": next(r for r in evaluations[arm]["rows"] if r["label"] == "uniform"),
                             "orchestrator_weights": next((r for r in evaluations[arm]["rows"] if r["label"] == "orchestrator"), None),
                             "steering": evaluations[arm]["steering"],
                             "tag_reading": evaluations[arm].get("tag_reading"),
                             "compute": _accounting([records[s] for s in ARM_STAGES[arm]])}
                       for arm in ARM_STAGES},
              "comparison": str(out / "compare" / "comparison.json")}
    atomic_write_json(out / "wic_comparison.json", result)
    atomic_write_text(out / "report.md", render_report(result))
    return result


def render_report(r: dict) -> str:
    objectives, c = r["objectives"], r["config"]

    def pm(row: dict, o: str) -> str:
        return f"{row['mean'][o]:.3f} ± {row['ci95'][o]:.3f}"

    def table(header: list[str], rows: list[list]) -> list[str]:
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(map(str, x)) + " |" for x in rows)]

    arms = r["arms"]
    return "\n".join([
        "# Weights in context: Pro-WiC vs RiC-online vs RiC-offline",
        "",
        f"Start `{c['policy']}`, offline data {', '.join(c['train_data'])} ({c['max_pairs']} pairs per spec; chosen and "
        f"rejected replies), {c['max_steps']} offline SFT steps; online: {c['iterations']} round(s) of {c['online_prompts']} prompts x "
        f"{c['num_generations']} samples, filter quantile {c['filter_quantile']}, {c['offline_mix']} offline samples mixed in, "
        f"{c['sft_steps_per_iteration']} SFT steps per round (RiC-offline gets the same steps on offline data); batch "
        f"{c['per_device_train_batch_size']}, learning rate {c['learning_rate']}, LoRA {c['use_lora']}, seed {c['seed']}. "
        f"Held-out: {c['eval_prompts_per_source']} prompts per source of {', '.join(c['eval_data'])}, one answer per "
        f"preference at temperature {c['eval_temperature']} (0: greedy), judged by `{c['ensemble']}`; reference point {r['reference_point']}.",
        "",
        "![fronts](compare/front.png)",
        "",
        "## Hypervolume and rewards at equal weights (mean ± 95% CI)",
        "",
        *table(["arm", "hypervolume", *objectives],
               [[a, f"{d['hypervolume']:.4f}", *(pm(d["equal_weights"], o) for o in objectives)] for a, d in arms.items()]),
        "",
        "With the orchestrator choosing each prompt's preference:",
        "",
        *table(["arm", *objectives, "combined (its weights)"],
               [[a, *(pm(d["orchestrator_weights"], o) for o in objectives),
                 f"{d['orchestrator_weights']['combined']['mean']:.3f} ± {d['orchestrator_weights']['combined']['ci95']:.3f}"]
                for a, d in arms.items() if d["orchestrator_weights"]]),
        "",
        "## Steering: raising the requested weight of an objective should raise its reward",
        "",
        "Per objective: Spearman correlation over the grid / fraction of non-decreasing steps / mean reward at w=0 -> "
        "w=1 / gain from w=0 to w=1 paired on prompts (mean ± 95% CI).",
        "",
        *table(["arm", *objectives],
               [[a, *(f"{d['steering'][o]['spearman']:.2f} / {d['steering'][o]['non_decreasing_steps']:.2f} / "
                      f"{d['steering'][o]['reward_at_lowest']:.3f} -> {d['steering'][o]['reward_at_highest']:.3f} / "
                      f"{steering_gain(d['steering'][o])}" for o in objectives)]
                for a, d in arms.items()]),
        "",
        "Does each policy read its tag? Held-out replies' mean token NLL under another reply's tag minus under "
        "their own (paired, nats/token; above 0: it reads the tag):",
        "",
        *table(["arm", "gap (mean ± 95% CI)"],
               [[a, f"{d['tag_reading']['gap']:+.4f} ± {d['tag_reading']['gap_ci95']:.4f}" if d["tag_reading"] else "-"]
                for a, d in arms.items()]),
        "",
        "## Compute",
        "",
        *table(["arm", "generated", "kept fraction", "SFT steps", "SFT tokens", "wall s (train)"],
               [[a, d["compute"]["generated"], "-" if d["compute"]["kept_fraction"] is None else f"{d['compute']['kept_fraction']:.2f}",
                 d["compute"]["sft_steps"], d["compute"]["sft_tokens"], f"{d['compute']['seconds']:.0f}"] for a, d in arms.items()]),
        "",
        "Full per-preference tables: eval/<arm>/report.md; side by side: compare/report.md.",
        "",
    ])
