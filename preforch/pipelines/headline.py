"""`preforch headline`: PRO's headline test as docs/design.md fixes it before it runs ("The headline test, fixed
before it runs"): does a policy trained under the orchestrator's per-prompt weights beat one trained under the best
fixed vector, on prompts whose best objective differs by kind?

Stages, each resumed from its artifacts (`--overwrite` redoes them):
1. every arm (rl-compare's `method[:setting]@algorithm[/aggregation]`) trained from one start once per training
   seed into OUTPUT_DIR/seed<s>/<arm> (`rl-compare --seed s --output_dir OUTPUT_DIR/seed<s> --train_only` trains the
   same folders, so seeds or arms can train in parallel calls); a seed's ranked-dpo arms share its candidates;
2. the starting policy and every final policy answer the same held-out prompts (drawn and decoded with --eval_seed;
   none opens with a first human turn of the training data), judged by --judge into OUTPUT_DIR/eval/<arm>-seed<s>;
3. the statistics of evaluation/headline.py, headline.json, report.md, headline.png, and replies.jsonl.gz: every
   evaluated reply with its judge's scores, for `preforch rejudge`.
"""

from __future__ import annotations

import platform
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from preforch.errors import DataError
from preforch.evaluation.headline import (bold_if_clear, interaction, mcnemar, noise_floor, pooled_paired_bootstrap,
                                          reach)
from preforch.evaluation.metrics import own_objective_scores, scores_from_lists, stratified_bootstrap
from preforch.evaluation.replies import write_replies
from preforch.io import atomic_write_json, atomic_write_text, read_json, read_jsonl
from preforch.orchestrator.human_labels import source_oracle_weights
from preforch.orchestrator.metrics import weight_entropy
from preforch.pipelines.config import PRIMARY_PAIR, HeadlineConfig
from preforch.pipelines.rl_comparison import (INITIAL, arm_folder, check_judge_held_out, evaluate_policy,
                                              judge_rule_statistics, policy_config, training_cost)

REPLIES_FILE = "replies.jsonl.gz"
# A judge objective whose own held-out pairwise accuracy is below this is reported as near chance, not headlined
# (about the upper end of chance's 95% interval on the 500 pairs per objective the judge is read on)
NEAR_CHANCE = 0.55


def seed_config(cfg: HeadlineConfig, seed: int) -> HeadlineConfig:
    """The rl-compare view of one training seed: its seed and OUTPUT_DIR/seed<s> (arms in sub-folders)."""
    return replace(cfg, seed=seed, output_dir=str(Path(cfg.output_dir) / f"seed{seed}"))


def eval_name(arm: str, seed: int) -> str:
    return f"{arm_folder(arm)}-seed{seed}"


def train_arms(cfg: HeadlineConfig) -> None:
    """Train every (arm, seed) not yet trained, arm by arm; an interrupted run continues from its checkpoint."""
    from preforch.alignment.morlhf import train_policy

    for arm in cfg.methods:
        for seed in cfg.seeds:
            pcfg = policy_config(seed_config(cfg, seed), arm)
            if (Path(pcfg.output_dir) / "policy").is_dir():
                print(f"{arm}, seed {seed}: trained policy found in {pcfg.output_dir}", flush=True)
                continue
            print(f"\n=== train-policy {arm}, seed {seed} ({cfg.max_steps} steps) ===", flush=True)
            train_policy(replace(pcfg, resume=any(Path(pcfg.output_dir).glob("checkpoint-*"))))


def judged_replies(evaluation: dict, folder: Path) -> list[dict]:
    """One row per held-out prompt of an evaluation in `folder`: prompt, source, reply (read back from its
    generation cache) and the judge's normalised scores (the `uniform` row's: a plain policy's one reply)."""
    rows = {r["label"]: r for r in evaluation["rows"]}
    cache = folder / "generations" / f"{evaluation['compute']['cache_key']}.jsonl"
    generated = [row for _, row in read_jsonl(cache)]
    return [{"prompt": g["prompt"], "source": source, "reply": g["candidates"][0],
             "scores": dict(zip(evaluation["objectives"], scores))}
            for g, source, scores in zip(generated, evaluation["prompt_sources"], rows["uniform"]["scores"])]


def judge_accuracy(judge: str) -> dict[str, dict]:
    """{objective: {"accuracy", "near_chance"}} of the judge's reward models on their own held-out pairs, read from
    the train_rm_config.json train-rm leaves in each model folder (none for a rule or a model trained elsewhere)."""
    from preforch.rewards.ensemble import ENSEMBLE_FILE

    spec = read_json(Path(judge) / ENSEMBLE_FILE)
    out = {}
    for source in spec["sources"]:
        record = Path(judge) / source.get("path", "") / "train_rm_config.json"
        if "path" in source and record.is_file():
            for objective, accuracy in read_json(record)["metrics"]["eval_accuracy"].items():
                out[objective] = {"accuracy": accuracy, "near_chance": accuracy < NEAR_CHANCE}
    return out


def exact_match_right(own: np.ndarray, sources: list[str], named: dict[str, str],
                      rules: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """{source: right [P_s] bool} for each source judged by a 0/1 rule (exact match): the z-scored own-objective
    score turned back into the rule's raw value with the judge's (mean, std)."""
    out = {}
    for source, objective in named.items():
        if objective in rules:
            mean, std = rules[objective]
            raw = own[np.asarray(sources) == source] * std + mean
            if np.all(np.isclose(raw, 0, atol=1e-4) | np.isclose(raw, 1, atol=1e-4)):
                out[source] = raw > 0.5
    return out


def compare(a: dict[int, np.ndarray], b: dict[int, np.ndarray], sources: list[str], floors: list[dict]) -> dict:
    """Arm a minus arm b on the same prompts: per training seed and pooled over seeds (the primary metric's
    statistic), the larger of the two arms' noise floors, and whether the pooled result clears it (bold)."""
    seeds = sorted(set(a) & set(b))
    pooled = pooled_paired_bootstrap([a[s] - b[s] for s in seeds], sources)
    floor = max(floors, key=lambda f: reach(f["overall"]))
    return {"per_seed": {s: pooled_paired_bootstrap([a[s] - b[s]], sources) for s in seeds}, "pooled": pooled,
            "noise_floor": floor["overall"], "bold": bold_if_clear(pooled["overall"], floor["overall"])}


def arm_weights(cfg: HeadlineConfig, arm: str, ensemble, prompts, sources: list[str]) -> dict:
    """Mean weight per objective and weight entropy (nats) by source, of the weights the arm trains under."""
    from preforch.alignment.morlhf import method_weights
    from preforch.pipelines.benchmark import weights_by_source

    w = method_weights(policy_config(seed_config(cfg, cfg.seeds[0]), arm), ensemble, prompts)
    means = weights_by_source(w, sources, list(ensemble.objectives))
    return {"mean": {s: m["mean"] for s, m in means.items()}, "entropy": weight_entropy(w.numpy(), sources)}


def run_headline(cfg: HeadlineConfig) -> dict:
    from preforch.data.loaders import load_preferences
    from preforch.evaluation.plots import plot_headline
    from preforch.pipelines.headline_report import render_report
    from preforch.rewards.ensemble import RewardEnsemble, check_objectives

    out = Path(cfg.output_dir)
    ensemble = RewardEnsemble.load(cfg.ensemble)
    objectives = list(ensemble.objectives)
    if not cfg.train_only:  # a training call (one arm or seed of several parallel ones) judges nothing
        check_objectives(ensemble.objectives, RewardEnsemble.load(cfg.judge).objectives, f"judge {cfg.judge}")
        check_judge_held_out(cfg.judge, cfg.eval_data)
    if cfg.overwrite:
        for path in [*(out / f"seed{s}" for s in cfg.seeds), out / "eval"]:
            shutil.rmtree(path, ignore_errors=True)
    train_arms(cfg)
    if cfg.train_only:
        return {"config": asdict(cfg), "trained": {f"{arm}, seed {s}": policy_config(seed_config(cfg, s), arm).output_dir
                                                   for arm in cfg.methods for s in cfg.seeds}}

    k = len(objectives)
    evaluations = {(INITIAL, None): evaluate_policy(cfg, cfg.policy, out / "eval" / INITIAL, k, cfg.eval_seed)}
    for arm in cfg.methods:
        for seed in cfg.seeds:
            policy = policy_config(seed_config(cfg, seed), arm).output_dir + "/policy"
            evaluations[(arm, seed)] = evaluate_policy(cfg, policy, out / "eval" / eval_name(arm, seed), k, cfg.eval_seed)

    replies = []
    for (arm, seed), ev in evaluations.items():
        folder = out / "eval" / (INITIAL if arm == INITIAL else eval_name(arm, seed))
        replies += [{**r, "arm": arm, "seed": seed} for r in judged_replies(ev, folder)]
    write_replies(out / REPLIES_FILE, replies)

    initial = evaluations[(INITIAL, None)]
    sources = initial["prompt_sources"]
    prompts = [r["prompt"] for r in replies[:len(sources)]]
    if source_oracle_weights(sources, objectives) is None:
        raise DataError(f"every held-out source must name one objective {objectives}; got {sorted(set(sources))}")
    named = {s: objectives[int(source_oracle_weights([s], objectives).argmax())] for s in dict.fromkeys(sources)}

    def own(ev: dict) -> np.ndarray:
        rows = {r["label"]: r for r in ev["rows"]}
        return own_objective_scores(scores_from_lists(rows["uniform"]["scores"]), sources, objectives).numpy()

    own_initial = own(initial)
    scores = {arm: {s: own(evaluations[(arm, s)]) for s in cfg.seeds} for arm in cfg.methods}
    rules = judge_rule_statistics(cfg.judge)
    floors = {arm: noise_floor([scores[arm][s] for s in cfg.seeds], sources) for arm in cfg.methods}

    extra = {spec: load_preferences(spec).prompts for spec in cfg.weight_data}
    arms = {}
    for arm in cfg.methods:
        run_dirs = {s: Path(policy_config(seed_config(cfg, s), arm).output_dir) for s in cfg.seeds}
        right = {s: exact_match_right(scores[arm][s], sources, named, rules) for s in cfg.seeds}
        arms[arm] = {
            "own_objective": {s: stratified_bootstrap(scores[arm][s], sources) for s in cfg.seeds},
            "right": {s: {src: float(r.mean()) for src, r in right[s].items()} for s in cfg.seeds},
            "vs_initial": pooled_paired_bootstrap([scores[arm][s] - own_initial for s in cfg.seeds], sources),
            "noise_floor": floors[arm],
            "weights": arm_weights(cfg, arm, ensemble, prompts, sources),
            "weight_data": {spec: arm_weights(cfg, arm, ensemble, p, [spec] * len(p)) for spec, p in extra.items()},
            "cost": {s: training_cost(d) for s, d in run_dirs.items()},
        }

    signals = {}
    for signal, roles in cfg.arms_by_signal().items():
        pro, best = (roles[r] for r in PRIMARY_PAIR)
        comparisons = {f"{arm} vs {base}": compare(scores[arm], scores[base], sources, [floors[arm], floors[base]])
                       for base in roles.values() if base.startswith("morlhf:")
                       for arm in roles.values() if arm != base}
        diff = np.mean([scores[pro][s] - scores[best][s] for s in cfg.seeds], axis=0)
        by_objective = {o: diff[[named[x] == o for x in sources]] for o in ("helpful", "harmless")}
        initial_right = exact_match_right(own_initial, sources, named, rules)
        signals[signal] = {
            "pro": pro, "best_fixed": best,
            "primary": comparisons[f"{pro} vs {best}"],
            "comparisons": comparisons,
            "interaction": (interaction(by_objective["helpful"], by_objective["harmless"])
                            if all(len(v) for v in by_objective.values()) else None),
            "mcnemar": {s: {src: mcnemar(exact_match_right(scores[pro][s], sources, named, rules)[src],
                                         exact_match_right(scores[best][s], sources, named, rules)[src])
                            for src in initial_right} for s in cfg.seeds},
        }

    result = {
        "config": asdict(cfg),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads()},
        "objectives": objectives,
        "judge": {"folder": cfg.judge, "accuracy": judge_accuracy(cfg.judge), "rules": sorted(rules)},
        "num_prompts": len(sources),
        "prompts_by_source": {s: sources.count(s) for s in named},
        "own_objective": named,
        "initial": {"own_objective": stratified_bootstrap(own_initial, sources),
                    "right": {src: float(r.mean()) for src, r in exact_match_right(own_initial, sources, named, rules).items()}},
        "arms": arms,
        "signals": signals,
        "replies": str(out / REPLIES_FILE),
    }
    atomic_write_json(out / "headline.json", result)
    plot_headline(result, out / "headline.png")
    atomic_write_text(out / "report.md", render_report(result))
    return result
