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
import re
import shutil
from dataclasses import asdict, fields
from pathlib import Path

import torch

from preforch.alignment.config import PolicyConfig
from preforch.alignment.methods import method_class
from preforch.alignment.trl_utils import LOG_FILE, read_log
from preforch.evaluation.config import EvaluateConfig
from preforch.evaluation.metrics import mean_interval, own_objective_scores, scores_from_lists, stratified_bootstrap
from preforch.evaluation.pareto import reference_point_or_default
from preforch.io import atomic_write_json, atomic_write_text, read_json
from preforch.orchestrator.human_labels import source_oracle_weights
from preforch.pipelines.config import RLComparisonConfig, arm_parts
from preforch.pipelines.rl_comparison_report import render_report
from preforch.rewards.sources import RuleReward

INITIAL = "initial"


def paired_delta(after: list[float], before: list[float]) -> dict[str, float | None]:
    """Mean and 95% CI half-width of the per-prompt difference after - before ([P] each, same prompts)."""
    return mean_interval(torch.tensor(after) - torch.tensor(before))


def arm_folder(arm: str) -> str:
    """A folder name for an arm: `morlhf:best-fixed` -> `morlhf-best-fixed`, `pro-morlhf@grpo/normalize-then-sum`
    -> `pro-morlhf-grpo-normalize-then-sum`, weights specs made path-safe."""
    return re.sub(r"[^\w.=-]+", "-", arm).replace("=", "")


def policy_config(cfg: RLComparisonConfig, arm: str) -> PolicyConfig:
    """The train-policy config of one arm (`method[:setting]`, see --methods): every shared option, its own
    output folder, and what the method's `arm_config` makes of the setting (e.g. morlhf:uniform / :best-fixed /
    :<weights> set the weights, single-reward:<objective> the objective)."""
    shared = {f.name: getattr(cfg, f.name) for f in fields(PolicyConfig)}
    method, setting, algorithm, aggregation = arm_parts(arm, cfg)
    own = {"method": method, "algorithm": algorithm, "aggregation": aggregation,
           "output_dir": str(Path(cfg.output_dir) / arm_folder(arm))}
    if setting:
        own.update(method_class(method).arm_config(cfg, setting))
    return PolicyConfig(**{**shared, **own})


def ranked_pair_agreement(out: Path, arms: list[str]) -> dict[str, dict]:
    """For every two arms that labelled the same candidates (`--algorithm ranked-dpo`): how often their (chosen,
    rejected) pairs differ, overall and by source (`ranked_dpo.pair_agreement`), keyed "arm a vs arm b". The label
    difference between a prompt-aware arm and a fixed one, known before any training."""
    from preforch.alignment.ranked_dpo import PAIRS_FILE, pair_agreement

    files = {a: out / arm_folder(a) / PAIRS_FILE for a in arms if (out / arm_folder(a) / PAIRS_FILE).is_file()}
    names = list(files)
    return {f"{a} vs {b}": pair_agreement(files[a], files[b]) for i, a in enumerate(names) for b in names[i + 1:]}


def snapshots(run_dir: Path) -> dict[int, str]:
    """Step -> loadable policy folder: every checkpoint (a LoRA adapter or full weights; both load with
    from_pretrained) and the final merged policy at the last logged step."""
    snaps = {int(p.name.rsplit("-", 1)[1]): str(p) for p in run_dir.glob("checkpoint-*") if p.name.rsplit("-", 1)[1].isdigit()}
    log = run_dir / LOG_FILE
    if (run_dir / "policy").is_dir() and log.is_file():
        last = max(row["step"] for row in read_log(log))
        snaps[last] = str(run_dir / "policy")
    return dict(sorted(snaps.items()))


def evaluate_policy(cfg: RLComparisonConfig, policy: str, out: Path, k: int, seed: int) -> dict:
    """`evaluate --method plain` of `policy` on cfg's held-out prompts (drawn and sampled with `seed`, never a
    training prompt), judged by cfg.judge, into `out`; a finished evaluation by the same judge is reused."""
    from preforch.evaluation.harness import run_evaluation

    if (out / "evaluation.json").is_file():
        done = json.loads((out / "evaluation.json").read_text())
        # reused when judged by the same judge, with each objective's mean over the prompts it applies to ("n")
        if done.get("judge") == (cfg.judge or cfg.ensemble) and "prompt_sources" in done and "n" in done["rows"][0]:
            return done
    print(f"\n=== held-out evaluation: {out.name} ({policy}) ===", flush=True)
    return run_evaluation(EvaluateConfig(
        policy=policy, method="plain", ensemble=cfg.ensemble, judge=cfg.judge, orchestrator=cfg.orchestrator,
        eval_data=cfg.eval_data, exclude_data=cfg.train_data,
        prompts_per_source=cfg.eval_prompts_per_source, grid=[",".join([repr(1 / k)] * k)],
        reference_point=reference_point_or_default(cfg.reference_point, k), max_new_tokens=cfg.max_completion_length,
        temperature=cfg.eval_temperature, seed=seed, output_dir=str(out), trust_remote_code=cfg.trust_remote_code))


def _summary(evaluation: dict) -> dict:
    """Per-objective means/CIs (over the prompts each applies to, n of them) and each weighting's combined reward
    of one evaluation."""
    rows = {r["label"]: r for r in evaluation["rows"]}
    return {"mean": rows["uniform"]["mean"], "ci95": rows["uniform"]["ci95"], "n": rows["uniform"]["n"],
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
        check_judge_held_out(cfg.judge, cfg.eval_data)
    probe = [({"role": "user", "content": "hello"},)]
    for method in cfg.methods:  # bad weights or a mismatched orchestrator fail now, not after an earlier method trained
        method_weights(policy_config(cfg, method), ensemble, probe)
    if cfg.overwrite:
        for name in [*map(arm_folder, cfg.methods), "eval"]:
            shutil.rmtree(out / name, ignore_errors=True)

    for arm in cfg.methods:
        pcfg = policy_config(cfg, arm)
        if (Path(pcfg.output_dir) / "policy").is_dir():
            print(f"{arm}: trained policy found in {pcfg.output_dir}, skipping training", flush=True)
            continue
        print(f"\n=== train-policy {arm} ({cfg.max_steps} steps) ===", flush=True)
        resume = any(Path(pcfg.output_dir).glob("checkpoint-*"))
        train_policy(PolicyConfig(**{**asdict(pcfg), "resume": resume}))
    if cfg.train_only:
        return {"config": asdict(cfg), "trained": {arm: policy_config(cfg, arm).output_dir for arm in cfg.methods}}

    initial = evaluate_policy(cfg, cfg.policy, out / "eval" / INITIAL, k, cfg.seed)
    curves = {}
    for arm in cfg.methods:
        curves[arm] = {0: initial}
        for step, path in snapshots(out / arm_folder(arm)).items():
            curves[arm][step] = evaluate_policy(cfg, path, out / "eval" / f"{arm_folder(arm)}-step{step}", k, cfg.seed)

    weightings = [r["label"] for r in initial["rows"]]  # uniform, and orchestrator when given
    result = {"config": asdict(cfg), "objectives": objectives, "num_prompts": initial["num_prompts"],
              "weightings": weightings, "initial": _summary(initial), "methods": {}}
    before = _summary(initial)["combined"]
    for arm, evals in curves.items():
        summaries = {step: _summary(ev) for step, ev in evals.items()}
        final_step = max(summaries)
        after = summaries[final_step]["combined"]
        result["methods"][arm] = {
            "weights": policy_config(cfg, arm).weights, "objective": policy_config(cfg, arm).objective,
            "final_step": final_step,
            "final": summaries[final_step],
            "delta_combined": {w: paired_delta(after[w]["per_prompt"], before[w]["per_prompt"]) for w in weightings},
            "heldout_curve": {w: [[step, s["combined"][w]["mean"], s["combined"][w]["ci95"]] for step, s in summaries.items()]
                              for w in weightings},
            "training_reward": _training_reward(out / arm_folder(arm)),
            "cost": training_cost(out / arm_folder(arm)),
        }
    agreement = ranked_pair_agreement(out, cfg.methods)
    if agreement:
        result["pair_agreement"] = agreement
    own = own_objective_comparison(curves, objectives, cfg.methods, judge_rule_statistics(cfg.judge or cfg.ensemble))
    if own is not None:
        result["own_objective"] = own
    heldout = {m: {**({"own objective, overall": own["curves"][m]} if own else {}),
                   **{f"combined, {w} w": c for w, c in r["heldout_curve"].items()}} for m, r in result["methods"].items()}
    # DPO arms log no combined reward of sampled batches (ranked-dpo samples none; TRL's online DPO logs its own)
    plot_rl_comparison(heldout, {m: r["training_reward"] for m, r in result["methods"].items() if r["training_reward"]},
                       out / "reward_vs_step.png")
    atomic_write_json(out / "rl_comparison.json", result)
    atomic_write_text(out / "report.md", render_report(result, INITIAL))
    return result


def judge_rule_statistics(folder: str) -> dict[str, tuple[float, float]]:
    """objective -> (mean, std) of the judge's z-scores for each of its rule objectives (exact match, ...), read from
    its ensemble.json without loading its models: what turns a normalised rule score back into its raw value."""
    from preforch.rewards.ensemble import ENSEMBLE_FILE

    spec = read_json(Path(folder) / ENSEMBLE_FILE)
    norm = spec.get("normalization")
    if not norm:
        return {}
    rules = {s["objective"] for s in spec["sources"] if s.get("kind") == RuleReward.kind}
    return {o: (m, sd) for o, m, sd in zip(spec["objectives"], norm["mean"], norm["std"]) if o in rules}


def judge_train_data(judge: str) -> list[str]:
    """The data specs the judge's reward models were trained on, read from the `train_rm_config.json` that train-rm
    leaves in each model folder; none for a source without one (a rule, a Hub model, a model trained elsewhere).
    `judge` is an ensemble folder or its ensemble.json, as `RewardEnsemble.load` takes."""
    from preforch.rewards.ensemble import ENSEMBLE_FILE

    file = Path(judge) / ENSEMBLE_FILE if Path(judge).is_dir() else Path(judge)
    records = (file.parent / s["path"] / "train_rm_config.json" for s in read_json(file)["sources"] if "path" in s)
    return list(dict.fromkeys(spec for r in records if r.is_file() for spec in read_json(r)["config"]["train_data"]))


def check_judge_held_out(judge: str, eval_data: list[str]) -> None:
    """Stop before any training when the judge's reward models were trained on pairs that share a first human turn
    with the evaluation prompts (`check_disjoint_prompts`); a judge that records no training data passes."""
    from preforch.data.loaders import check_disjoint_prompts

    train_data = judge_train_data(judge)
    if train_data:
        check_disjoint_prompts(train_data, eval_data, f"judge {judge}")


def baseline_arms(arms: list[str]) -> list[str]:
    """The arms every other arm is compared with, paired: those of methods marked `rl_compare_baseline` (MORLHF,
    fixed weights, in each of its variants)."""
    return [a for a in arms if method_class(a.partition(":")[0].partition("@")[0]).rl_compare_baseline]


def own_objective_comparison(curves: dict[str, dict[int, dict]], objectives: list[str], arms: list[str],
                             rules: dict[str, tuple[float, float]]) -> dict | None:
    """Each held-out prompt judged on the objective its source names (`own_objective_scores`), per source and
    overall, for the initial policy and each arm's final policy; paired stratified-bootstrap differences of every
    arm against the initial policy and against each MORLHF arm; the overall mean at every checkpoint. `raw`
    holds, for sources whose objective is one of the judge's `rules` (objective -> (mean, std) of its z-score),
    the un-normalised mean: for exact match, the share of right answers. None when a prompt source names no
    single objective."""
    initial = next(iter(curves.values()))[0]
    sources = initial["prompt_sources"]
    if source_oracle_weights(sources, objectives) is None:
        return None

    def scores(evaluation: dict) -> torch.Tensor:
        rows = {r["label"]: r for r in evaluation["rows"]}
        return own_objective_scores(scores_from_lists(rows["uniform"]["scores"]), sources, objectives)

    named = {s: objectives[int(source_oracle_weights([s], objectives).argmax())] for s in dict.fromkeys(sources)}

    def raw_means(values: torch.Tensor) -> dict[str, float]:
        return {s: round(float(values[[x == s for x in sources]].mean()) * rules[o][1] + rules[o][0], 6) + 0.0  # no -0.0
                for s, o in named.items() if o in rules}

    final = {INITIAL: initial, **{arm: evals[max(evals)] for arm, evals in curves.items()}}
    per_prompt = {name: scores(ev) for name, ev in final.items()}
    out = {"sources": named,
           "policies": {name: {"scores": stratified_bootstrap(v.tolist(), sources), "raw": raw_means(v)}
                        for name, v in per_prompt.items()},
           "vs": {}, "curves": {}}
    for base in [INITIAL, *baseline_arms(arms)]:
        out["vs"][base] = {arm: stratified_bootstrap((per_prompt[arm] - per_prompt[base]).tolist(), sources)
                           for arm in arms if arm != base}
    for arm, evals in curves.items():
        points = []
        for step, ev in evals.items():
            b = stratified_bootstrap(scores(ev).tolist(), sources)["overall"]
            points.append([step, b["mean"], (b["ci95"][1] - b["ci95"][0]) / 2])
        out["curves"][arm] = points
    return out


def training_cost(run_dir: Path) -> dict:
    """Seconds per optimisation step and the peak memory of a train-policy run, from its log.jsonl: TRL's per-step
    wall time where the trainer logs one (GRPO), else each training segment's `train_runtime` over the steps (DPO;
    a resumed run logs one segment per start)."""
    rows = read_log(run_dir / LOG_FILE)
    steps = max((r["step"] for r in rows), default=0)
    times = [float(r["step_time"]) for r in rows if "step_time" in r]  # a resume keeps them all
    runtime = sum(float(r["train_runtime"]) for r in rows if "train_runtime" in r)
    cost = {"steps": steps, "seconds_per_step": sum(times) / len(times) if times else runtime / steps if runtime and steps else None}
    for key in ("peak_rss_mb", "peak_cuda_mb"):
        peaks = [r[key] for r in rows if key in r]
        if peaks:
            cost[key] = max(peaks)
    return cost


def _training_reward(run_dir: Path) -> list[list[float]]:
    """(step, mean combined reward of the step's completions under the method's own weights) from log.jsonl."""
    rows = read_log(run_dir / LOG_FILE)
    return [[r["step"], r["objectives/combined"]] for r in rows if "objectives/combined" in r]
