"""`preforch rl-compare`: RL methods (default Pro-MORLHF vs MORLHF) trained from one start on one prompt set,
then judged on the same held-out prompts at every checkpoint: the paper's Figure 3 at small scale, plus a
before/after table of per-objective rewards.

Stages, each resumed from its artifacts (`--overwrite` redoes them):
1. `train-policy` per method into OUTPUT_DIR/<method> (continues from its newest checkpoint);
2. `evaluate --method plain` of the initial policy (step 0) and of each checkpoint and final policy, with the
   same prompts and sampling seed for all, judged by --judge (default: the training ensemble), into
   OUTPUT_DIR/eval/<method>-step<N> (an evaluation by another judge is redone, so a judge can be added later);
3. reward_vs_step.png, report.md and rl_comparison.json.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, fields
from pathlib import Path

import torch

from preforch.alignment.trl_utils import LOG_FILE, read_log
from preforch.config import EvaluateConfig, PolicyConfig, RLComparisonConfig
from preforch.evaluation.metrics import mean_ci
from preforch.evaluation.pareto import reference_point_or_default
from preforch.io import atomic_write_json, atomic_write_text

INITIAL = "initial"


def paired_delta(after: list[float], before: list[float]) -> dict[str, float]:
    """Mean and 95% CI half-width of the per-prompt difference after - before ([P] each, same prompts)."""
    m, h = mean_ci((torch.tensor(after) - torch.tensor(before)).unsqueeze(-1))
    return {"mean": float(m[0]), "ci95": float(h[0])}


def policy_config(cfg: RLComparisonConfig, method: str) -> PolicyConfig:
    """The train-policy config of one method: every shared option, its own output folder."""
    shared = {f.name: getattr(cfg, f.name) for f in fields(PolicyConfig)}
    return PolicyConfig(**{**shared, "method": method, "output_dir": str(Path(cfg.output_dir) / method)})


def snapshots(run_dir: Path) -> dict[int, str]:
    """Step -> loadable policy folder: every checkpoint (a LoRA adapter or full weights; both load with
    from_pretrained) and the final merged policy at the last logged step."""
    snaps = {int(p.name.rsplit("-", 1)[1]): str(p) for p in run_dir.glob("checkpoint-*") if p.name.rsplit("-", 1)[1].isdigit()}
    log = run_dir / LOG_FILE
    if (run_dir / "policy").is_dir() and log.is_file():
        last = max(row["step"] for row in read_log(log))
        snaps[last] = str(run_dir / "policy")
    return dict(sorted(snaps.items()))


def _evaluate(cfg: RLComparisonConfig, policy: str, name: str, k: int) -> dict:
    from preforch.evaluation.harness import run_evaluation

    out = Path(cfg.output_dir) / "eval" / name
    if (out / "evaluation.json").is_file():
        done = json.loads((out / "evaluation.json").read_text())
        if done.get("judge") == (cfg.judge or cfg.ensemble):
            return done
    print(f"\n=== held-out evaluation: {name} ({policy}) ===", flush=True)
    return run_evaluation(EvaluateConfig(
        policy=policy, method="plain", ensemble=cfg.ensemble, judge=cfg.judge, orchestrator=cfg.orchestrator,
        eval_data=cfg.eval_data,
        prompts_per_source=cfg.eval_prompts_per_source, grid=[",".join([repr(1 / k)] * k)],
        reference_point=reference_point_or_default(cfg.reference_point, k), max_new_tokens=cfg.max_completion_length,
        temperature=cfg.eval_temperature, seed=cfg.seed, output_dir=str(out), trust_remote_code=cfg.trust_remote_code))


def _summary(evaluation: dict) -> dict:
    """Per-objective means/CIs and each weighting's combined reward of one evaluation."""
    rows = {r["label"]: r for r in evaluation["rows"]}
    return {"mean": rows["uniform"]["mean"], "ci95": rows["uniform"]["ci95"],
            "combined": {label: r["combined"] for label, r in rows.items()}}


def run_rl_comparison(cfg: RLComparisonConfig) -> dict:
    from preforch.alignment.morlhf import method_weights, train_policy
    from preforch.evaluation.plots import plot_rl_comparison
    from preforch.rewards.ensemble import RewardEnsemble, check_objectives

    out = Path(cfg.output_dir)
    ensemble = RewardEnsemble.load(cfg.ensemble)
    objectives = list(ensemble.objectives)
    k = len(objectives)
    reference_point_or_default(cfg.reference_point, k)  # a wrong one fails now, not after training
    if cfg.judge:  # evaluate checks this too, but only after training
        check_objectives(ensemble.objectives, RewardEnsemble.load(cfg.judge).objectives, f"judge {cfg.judge}")
    probe = [({"role": "user", "content": "hello"},)]
    for method in cfg.methods:  # bad weights or a mismatched orchestrator fail now, not after an earlier method trained
        method_weights(policy_config(cfg, method), ensemble, probe)
    if cfg.overwrite:
        for name in [*cfg.methods, "eval"]:
            shutil.rmtree(out / name, ignore_errors=True)

    for method in cfg.methods:
        pcfg = policy_config(cfg, method)
        if (Path(pcfg.output_dir) / "policy").is_dir():
            print(f"{method}: trained policy found in {pcfg.output_dir}, skipping training", flush=True)
            continue
        print(f"\n=== train-policy --method {method} ({cfg.max_steps} steps) ===", flush=True)
        resume = any(Path(pcfg.output_dir).glob("checkpoint-*"))
        train_policy(PolicyConfig(**{**asdict(pcfg), "resume": resume}))

    initial = _evaluate(cfg, cfg.policy, INITIAL, k)
    curves = {}
    for method in cfg.methods:
        curves[method] = {0: initial}
        for step, path in snapshots(out / method).items():
            curves[method][step] = _evaluate(cfg, path, f"{method}-step{step}", k)

    weightings = [r["label"] for r in initial["rows"]]  # uniform, and orchestrator when given
    result = {"config": asdict(cfg), "objectives": objectives, "num_prompts": initial["num_prompts"],
              "weightings": weightings, "initial": _summary(initial), "methods": {}}
    before = _summary(initial)["combined"]
    for method, evals in curves.items():
        summaries = {step: _summary(ev) for step, ev in evals.items()}
        final_step = max(summaries)
        after = summaries[final_step]["combined"]
        result["methods"][method] = {
            "final_step": final_step,
            "final": summaries[final_step],
            "delta_combined": {w: paired_delta(after[w]["per_prompt"], before[w]["per_prompt"]) for w in weightings},
            "heldout_curve": {w: [[step, s["combined"][w]["mean"], s["combined"][w]["ci95"]] for step, s in summaries.items()]
                              for w in weightings},
            "training_reward": _training_reward(out / method),
        }
    plot_rl_comparison({m: r["heldout_curve"] for m, r in result["methods"].items()},
                       {m: r["training_reward"] for m, r in result["methods"].items()}, out / "reward_vs_step.png")
    atomic_write_json(out / "rl_comparison.json", result)
    atomic_write_text(out / "report.md", render_report(result))
    return result


def _training_reward(run_dir: Path) -> list[list[float]]:
    """(step, mean combined reward of the step's completions under the method's own weights) from log.jsonl."""
    rows = read_log(run_dir / LOG_FILE)
    return [[r["step"], r["objectives/combined"]] for r in rows if "objectives/combined" in r]


def _pm(stat: dict) -> str:
    return f"{stat['mean']:+.3f} ± {stat['ci95']:.3f}"


def render_report(r: dict) -> str:
    objectives, weightings = r["objectives"], r["weightings"]
    header = ["policy", "step", *objectives, *(f"combined, {w} w" for w in weightings)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(name: str, step: int, s: dict) -> str:
        cells = [f"{s['mean'][o]:.3f} ± {s['ci95'][o]:.3f}" for o in objectives]
        cells += [f"{s['combined'][w]['mean']:.3f} ± {s['combined'][w]['ci95']:.3f}" for w in weightings]
        return "| " + " | ".join([name, str(step), *cells]) + " |"

    lines.append(row(INITIAL, 0, r["initial"]))
    lines += [row(m, d["final_step"], d["final"]) for m, d in r["methods"].items()]
    deltas = ["| method | " + " | ".join(f"Δ combined, {w} w (paired)" for w in weightings) + " |",
              "|" + "---|" * (len(weightings) + 1)]
    deltas += ["| " + m + " | " + " | ".join(_pm(d["delta_combined"][w]) for w in weightings) + " |"
               for m, d in r["methods"].items()]
    c = r["config"]
    return "\n".join([
        "# RL comparison: " + " vs ".join(r["methods"]),
        "",
        f"{c['algorithm'].upper()}, policy `{c['policy']}`, {c['max_steps']} steps of {c['per_device_train_batch_size']} "
        f"completions ({c['num_generations']} per prompt, up to {c['max_completion_length']} tokens), learning rate "
        f"{c['learning_rate']}, beta {c['beta']}, LoRA {c['use_lora']}, seed {c['seed']}. Training prompts: "
        f"{', '.join(c['train_data'])}. Held-out: {r['num_prompts']} prompts from {', '.join(c['eval_data'])}, "
        f"one answer each at temperature {c['eval_temperature']}, the same prompts and sampling seed for every policy, "
        + (f"judged by `{c['judge']}` (normalised rewards), not the training ensemble `{c['ensemble']}`."
           if c.get("judge") else f"judged by the training ensemble `{c['ensemble']}` (normalised rewards), which the "
           "policies were trained to please: pass --judge with held-out reward models for an independent judge."),
        "",
        "![reward vs step](reward_vs_step.png)",
        "",
        "## Held-out rewards before and after (mean ± 95% CI)",
        "",
        *lines,
        "",
        "## Change of the held-out combined reward against the initial policy",
        "Per-prompt differences on the same prompts (mean ± 95% CI); an interval that excludes 0 is a real change.",
        "",
        *deltas,
        "",
    ])
