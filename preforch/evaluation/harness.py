"""`preforch evaluate`: one preference policy, held-out prompts, a preference grid, a judge; fronts, hypervolume, gap.

The policy is whatever `preforch.serving` loads (plain, best-of-n, wic, or any kind registered there), and
evaluate uses only its interface: the policy samples candidates once for every weighting (cached on disk, keyed
by its kind, settings, the sampling settings and the prompts), selects a reply per prompt under each weighting,
and the judge scores the replies. Best-of-N's candidates serve every weighting, so a grid costs one sampling; a
wic policy answers every weighting in one generation call. A policy that reads its preference from a prompt tag
is also checked for whether it reads it.
Rows beyond the grid: uniform weights, the orchestrator's per-prompt weights when one is given, and the user's
`--weights` (labelled by the spec; a partial spec such as `harmless=0.5,auto` is filled by the orchestrator).

An objective that does not apply to a reply (exact match on a prompt that is no problem) is skipped, never filled
in (DESIGN.md section 8): each row's mean of an objective is over the prompts it applies to, reported with that
count `n` (mean None where it applies to none, the CI None where to fewer than two); the combined reward
renormalises the weights over the objectives that apply; steering and the alignment gap likewise. The Pareto
front and hypervolume are over the objectives with a mean at every grid point (`front_objectives`): one that
applies to none of the evaluated prompts is left out of them, listed in the result, rather than refused, so that
a mixed-intent ensemble can still judge a policy on chat prompts alone.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from preforch.data.loaders import sample_per_source
from preforch.data.weights import random_simplex
from preforch.errors import ConfigError
from preforch.evaluation.config import EvaluateConfig
from preforch.evaluation.generations import cache_key, load_generations, save_generations
from preforch.evaluation.metrics import mean_interval, objective_means, steering_monotonicity
from preforch.evaluation.pareto import (check_grid, check_reference_point, front_objectives, hypervolume, mean_points,
                                        pareto_mask, simplex_grid)
from preforch.generation.combined_reward import combined_reward
from preforch.generation.sampling import SamplingConfig
from preforch.io import read_json
from preforch.orchestrator.preference import load_orchestrator, preference_weights
from preforch.rewards.ensemble import RewardEnsemble, check_objectives
from preforch.rewards.scores import Scores
from preforch.serving.policies.folder import served_policy
from preforch.serving.policies.policy import PreferencePolicy, PromptTagged, Prompts, Replies


def alignment_gap(oracle_pick: Scores | torch.Tensor, pick: Scores | torch.Tensor, oracle: torch.Tensor) -> torch.Tensor:
    """Combined reward lost per prompt by weighting with w instead of the oracle w*(x) (Sec. 5).

    gap(x) = w*(x) . r~(x, y*) - w*(x) . r~(x, y_w): oracle_pick and pick [P, K] are r~ of y* and y_w, the
    replies the policy gives under w* and under w; oracle [P, K] is w*. Each combined reward is over the
    objectives that apply to its reply, w* renormalised over them (`combined_reward`). Returns [P]: >= 0 for a
    policy that picks by w . r~ under the same ensemble (best-of-n), 0 for one that ignores w.
    """
    return combined_reward(oracle_pick, oracle) - combined_reward(pick, oracle)


def resolve_from_run(cfg: EvaluateConfig) -> EvaluateConfig:
    """Fill policy, ensemble, orchestrator, prompts and sampling from a quickstart run folder."""
    run = Path(cfg.from_run)
    metrics = run / "metrics.json"
    if not metrics.is_file():
        raise ConfigError(f"{run}: not a quickstart run folder (missing metrics.json)")
    qs = read_json(metrics)
    try:
        qs = qs["config"]
        return replace(cfg, policy=qs["policy"], ensemble=str(run / "rewards"), orchestrator=str(run / "orchestrator"),
                       prompts_per_source=qs["bon_prompts_per_source"], num_candidates=qs["num_candidates"],
                       max_new_tokens=qs["max_new_tokens"], seed=qs["seed"])
    except (KeyError, TypeError) as e:
        raise ConfigError(f"{metrics}: malformed quickstart metrics ({type(e).__name__}: {e})") from None


def _grid(cfg: EvaluateConfig, objectives) -> np.ndarray:
    if not cfg.grid:
        return simplex_grid(len(objectives), cfg.grid_divisions)
    try:
        rows = [[float(x) for x in g.split(",")] for g in cfg.grid]
    except ValueError:
        raise ConfigError(f"--grid: each preference is comma-separated numbers, got {cfg.grid}") from None
    if len({len(r) for r in rows}) != 1:
        raise ConfigError(f"--grid: every preference needs {len(objectives)} weights, got {cfg.grid}")
    return check_grid(np.array(rows), objectives)


def candidates_for(cfg: EvaluateConfig, policy: PreferencePolicy, prompts: Prompts, weightings: list[torch.Tensor],
                   sampling: SamplingConfig) -> tuple[Replies, dict]:
    """The policy's candidates for every weighting, from the cache when the same kind, settings, sampling and
    prompts (and weights, for a policy whose samples depend on them) made them before."""
    asked = policy.asked(prompts, weightings)
    settings = {**policy.describe(), "sampling": asdict(sampling),
                "weights": None if policy.shares_candidates else [w.tolist() for w in weightings]}
    folder = Path(cfg.generation_cache or Path(cfg.output_dir) / "generations")
    key = cache_key(settings, asked)
    cached = load_generations(folder, key, len(asked))
    info = {"cache_key": key, "cache_hit": cached is not None, "generation_s": 0.0, "generated": 0}
    if cached is not None:
        return cached, info
    t = time.perf_counter()
    out = policy.candidates(prompts, weightings, sampling)
    save_generations(folder, key, settings, asked, out)
    info.update(generation_s=time.perf_counter() - t, generated=sum(map(len, out)))
    return out, info


def selected_scores(policy: PreferencePolicy, scorer: RewardEnsemble, prompts: Prompts, candidates: Replies,
                    weightings: Sequence[torch.Tensor], sampling: SamplingConfig, progress: bool = True) -> Scores:
    """Normalised scores [L, P, K] of the reply the policy selects for each prompt under each of the L
    weightings, and where each objective applies (a reply picked under several weightings is scored once: the
    ensemble caches pairs)."""
    picks = policy.select(prompts, candidates, weightings, sampling)
    replies = [row[0] for pick in picks for row in pick]
    return scorer.score(list(prompts) * len(picks), replies, progress=progress).view(len(picks), len(prompts), -1)


def tag_reading_check(policy: PromptTagged, data, judge: RewardEnsemble) -> dict:
    """evaluation/tag_reading.py's check on the held-out prompts' chosen and rejected replies."""
    from preforch.evaluation.tag_reading import tag_reading

    prompts, replies = data.all_replies()
    model, tok = policy.language_model()
    return tag_reading(model, tok, policy.spec, prompts, replies, judge.score(prompts, replies), progress=True)


def alignment_gaps(policy: PreferencePolicy, ensemble: RewardEnsemble, data, candidates: Replies,
                   named: dict[str, torch.Tensor], sampling: SamplingConfig, tau: float, seed: int) -> dict:
    """Mean gap (± 95% CI) of each named weighting and random weights against the oracle weights
    w*(x) = softmax(r~(x, y_w) / tau) of each prompt's chosen reply (over the objectives that apply to it, 0 on
    the others), the policy picking from its shared candidates under each (empty for a policy without shared
    candidates: y* would need new samples)."""
    if not policy.shares_candidates:
        return {}
    from preforch.orchestrator.fit import preference_targets

    prompts = data.prompts
    oracle = preference_targets(ensemble, data, tau, progress=False)
    named = {**named, "random": random_simplex(len(prompts), len(ensemble.objectives), seed)}
    scores = selected_scores(policy, ensemble, prompts, candidates, [oracle, *named.values()], sampling, progress=False)
    return {name: mean_interval(alignment_gap(scores[0], scores[i], oracle)) for i, name in enumerate(named, 1)}


def run_evaluation(cfg: EvaluateConfig) -> dict:
    if cfg.from_run:
        cfg = resolve_from_run(cfg)
    started = time.perf_counter()
    ensemble = RewardEnsemble.load(cfg.ensemble)
    judge = RewardEnsemble.load(cfg.judge) if cfg.judge else ensemble
    check_objectives(ensemble.objectives, judge.objectives, f"judge {cfg.judge}")
    objectives = list(ensemble.objectives)
    check_reference_point(cfg.reference_point, len(objectives))  # fail before any generation
    grid = _grid(cfg, objectives)
    policy, sampling = served_policy(cfg, ensemble)  # fails on other objectives, before any generation
    data = sample_per_source(cfg.eval_data, cfg.prompts_per_source, cfg.seed, cfg.exclude_data)  # raises on empty data
    prompts = data.prompts

    orch = load_orchestrator(cfg.orchestrator, objectives) if cfg.orchestrator else None
    tau = orch.tau if orch is not None else cfg.tau

    k = len(objectives)
    named = {"uniform": torch.full((len(prompts), k), 1.0 / k)}
    if orch is not None:
        named["orchestrator"] = preference_weights(None, prompts, objectives, orch)
    if cfg.weights:
        named[cfg.weights] = preference_weights(cfg.weights, prompts, objectives, orch)
    grid_weights = {",".join(f"{x:g}" for x in w): torch.tensor(w, dtype=torch.float32).expand(len(prompts), k) for w in grid}
    weightings = dict(zip([*grid_weights, *named], policy.check_weights(prompts, [*grid_weights.values(), *named.values()])))
    t = time.perf_counter()
    scorers = [ensemble] if judge is ensemble else [ensemble, judge]  # the ensemble scores best-of-n's candidates
    already_scored = [e.pairs_scored for e in scorers]
    candidates, gen_info = candidates_for(cfg, policy, prompts, list(weightings.values()), sampling)
    judged = selected_scores(policy, judge, prompts, candidates, list(weightings.values()), sampling)
    judged_under = {label: judged[i] for i, label in enumerate(weightings)}  # label -> Scores [P, K]
    scoring_s = time.perf_counter() - t - gen_info["generation_s"]
    scored = sum(e.pairs_scored - n for e, n in zip(scorers, already_scored))
    reading = tag_reading_check(policy, data, judge) if isinstance(policy, PromptTagged) else None

    def row(label: str) -> dict:
        return {"label": label, **objective_means(judged_under[label], objectives)}

    grid_rows = [{**row(label), "weights": w.tolist()} for label, w in zip(grid_weights, grid)]
    on_front = front_objectives(grid_rows, objectives)
    points = mean_points(grid_rows, on_front)
    for r, on in zip(grid_rows, pareto_mask(points)):
        r["on_front"] = bool(on)
    extra_rows = []
    for name, w in named.items():
        per_prompt = combined_reward(judged_under[name], w)  # judged under the row's own weights
        # Per-prompt values let runs on the same prompts be compared pairwise (tighter than two CIs).
        extra_rows.append({**row(name), "combined": {**mean_interval(per_prompt), "per_prompt": per_prompt.tolist()},
                           "scores": judged_under[name].tolist()})  # [P, K], None: not applicable; for per-source stats

    result = {
        "config": asdict(cfg),
        "objectives": objectives,
        "method": policy.kind,
        "policy": cfg.policy,
        "policy_settings": policy.describe(),
        "judge": cfg.judge or cfg.ensemble,
        "num_prompts": len(prompts),
        "sources": sorted(set(data.sources)),
        "prompt_sources": data.sources,
        "num_candidates": len(candidates[0]),
        "reference_point": list(cfg.reference_point),
        "grid": grid_rows,
        "rows": extra_rows,
        "front_objectives": on_front,
        "hypervolume": hypervolume(points, [cfg.reference_point[objectives.index(o)] for o in on_front]),
        "steering": steering_monotonicity(grid, judged[:len(grid_weights)], objectives),
        "alignment_gap": alignment_gaps(policy, ensemble, data, candidates, named, sampling, tau, cfg.seed),
        "tag_reading": reading,
        "compute": {**gen_info, "scoring_s": scoring_s, "responses_scored": scored,
                    "total_s": time.perf_counter() - started},
    }
    from preforch.evaluation.report import write_evaluation_report

    write_evaluation_report(Path(cfg.output_dir), result)
    return result
