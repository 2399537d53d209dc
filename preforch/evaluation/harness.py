"""`preforch evaluate`: one policy, held-out prompts, a preference grid, a judge; fronts, hypervolume, gap.

How a method serves a preference w:
- best-of-n: N candidates per prompt are sampled once (cached); for each w, the candidate maximising
  w . r~ under the method's own ensemble is picked. The judge ensemble then scores the picks.
- plain: one sample per prompt, the same for every w (the policy ignores preferences): a single point.
- wic: a weights-in-context policy (train-wic) answers once per w, with w (or RiC's target scores) written
  into the prompt; steering is checked by whether raising w_i raises objective i's reward.
Rows beyond the grid: uniform weights, the orchestrator's per-prompt weights when one is given, and the user's
`--weights` (labelled by the spec; a partial spec such as `harmless=0.5,auto` is filled by the orchestrator).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from preforch.alignment.best_of_n import combined_reward, select_best
from preforch.config import EvaluateConfig
from preforch.data.loaders import sample_per_source
from preforch.data.weights import random_simplex
from preforch.errors import ConfigError
from preforch.evaluation.generations import cache_key, load_generations, save_generations
from preforch.evaluation.metrics import mean_ci, steering_monotonicity
from preforch.evaluation.pareto import check_grid, check_reference_point, hypervolume, pareto_mask, simplex_grid
from preforch.orchestrator.preference import load_orchestrator, preference_weights
from preforch.rewards.ensemble import RewardEnsemble, check_objectives


def alignment_gap(selection: torch.Tensor, oracle: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Combined reward lost per prompt by weighting with `weights` instead of the oracle w*(x) (Sec. 5).

    gap(x) = w*(x) . r~(x, y*) - w*(x) . r~(x, y_w), y* and y_w the candidates picked under w* and w.
    selection [P, N, K]; oracle, weights [P, K]. Returns [P], >= 0.
    """
    under_oracle = combined_reward(selection, oracle.unsqueeze(1))  # [P, N]
    rows = torch.arange(len(selection))
    return under_oracle[rows, select_best(selection, oracle)] - under_oracle[rows, select_best(selection, weights)]


def resolve_from_run(cfg: EvaluateConfig) -> EvaluateConfig:
    """Fill policy, ensemble, orchestrator, prompts and sampling from a quickstart run folder."""
    run = Path(cfg.from_run)
    metrics = run / "metrics.json"
    if not metrics.is_file():
        raise ConfigError(f"{run}: not a quickstart run folder (missing metrics.json)")
    qs = json.loads(metrics.read_text())["config"]
    return replace(cfg, policy=qs["policy"], ensemble=str(run / "rewards"), orchestrator=str(run / "orchestrator"),
                   prompts_per_source=qs["bon_prompts_per_source"], num_candidates=qs["num_candidates"],
                   max_new_tokens=qs["max_new_tokens"], seed=qs["seed"])


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


def samples_per_prompt(cfg: EvaluateConfig) -> int:
    """best-of-n samples N candidates; plain and wic answer once (wic: once per requested preference)."""
    return cfg.num_candidates if cfg.method == "best-of-n" else 1


def candidates_for(cfg: EvaluateConfig, prompts) -> tuple[list[list[str]], dict]:
    """Sampled candidates [P][N], from the cache when the same settings made them before."""
    from preforch.models import resolve

    n = samples_per_prompt(cfg)
    settings = {"policy": resolve(cfg.policy), "n": n, "max_new_tokens": cfg.max_new_tokens,
                "temperature": cfg.temperature, "top_p": cfg.top_p, "seed": cfg.seed}
    folder = Path(cfg.generation_cache or Path(cfg.output_dir) / "generations")
    key = cache_key(settings, prompts)
    cached = load_generations(folder, key, len(prompts))
    info = {"cache_key": key, "cache_hit": cached is not None, "generation_s": 0.0, "generated": 0}
    if cached is not None:
        return cached, info
    from transformers import set_seed

    from preforch.alignment.best_of_n import SamplingConfig, sample_candidates
    from preforch.models import load_policy

    t = time.perf_counter()
    set_seed(cfg.seed)
    model, tok = load_policy(settings["policy"], trust_remote_code=cfg.trust_remote_code)
    out = sample_candidates(model, tok, prompts, SamplingConfig(n, cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.batch_size))
    save_generations(folder, key, settings, prompts, out)
    info.update(generation_s=time.perf_counter() - t, generated=len(prompts) * n)
    return out, info


def wic_rewards(cfg: EvaluateConfig, prompts, weightings: dict[str, torch.Tensor], judge: RewardEnsemble):
    """A weights-in-context policy answers each prompt once per weighting (label -> [P, K]), the preference
    rendered into its prompt (a RiC policy gets the mapped target scores); the judge scores each answer on the
    untagged prompt. All weightings go through one generation call (one model load, one cache entry).
    Returns (label -> judged rewards [P, K], generation info, responses scored)."""
    from preforch.alignment.wic import load_wic_spec
    from preforch.models import resolve

    spec = load_wic_spec(resolve(cfg.policy))
    check_objectives(judge.objectives, spec.objectives, f"weights-in-context policy {cfg.policy}")
    candidates, info = candidates_for(cfg, [p for w in weightings.values() for p in spec.condition(prompts, w)])
    replies = [cs[0] for cs in candidates]
    scores = judge.score(list(prompts) * len(weightings), replies, progress=True).view(len(weightings), len(prompts), -1)
    return dict(zip(weightings, scores)), info, len(replies)


def wic_tag_reading(cfg: EvaluateConfig, data, judge: RewardEnsemble) -> dict:
    """evaluation/tag_reading.py's check on the held-out prompts' chosen and rejected replies."""
    from preforch.alignment.wic import load_wic_spec
    from preforch.evaluation.tag_reading import tag_reading
    from preforch.models import load_policy, resolve

    prompts, replies = data.all_replies()
    policy = resolve(cfg.policy)
    model, tok = load_policy(policy, trust_remote_code=cfg.trust_remote_code)
    return tag_reading(model, tok, load_wic_spec(policy), prompts, replies, judge.score(prompts, replies), progress=True)


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
    data = sample_per_source(cfg.eval_data, cfg.prompts_per_source, cfg.seed)  # raises on empty data
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
    t = time.perf_counter()
    if cfg.method == "wic":
        judged_under, gen_info, scored = wic_rewards(cfg, prompts, {**grid_weights, **named}, judge)
        reading = wic_tag_reading(cfg, data, judge)
        selection = None
    else:
        reading = None
        candidates, gen_info = candidates_for(cfg, prompts)
        n = len(candidates[0])
        flat_prompts = [p for p, cs in zip(prompts, candidates) for _ in cs]
        flat = [c for cs in candidates for c in cs]
        selection = ensemble.score(flat_prompts, flat, progress=True).view(len(prompts), n, -1)
        judged = selection if judge is ensemble else judge.score(flat_prompts, flat, progress=True).view(len(prompts), n, -1)
        scored = len(flat) * (1 if judge is ensemble else 2)
        rows_idx = torch.arange(len(prompts))
        judged_under = {label: judged[rows_idx, select_best(selection, w)] for label, w in {**grid_weights, **named}.items()}
    scoring_s = time.perf_counter() - t - gen_info["generation_s"]

    def row(label: str) -> dict:
        mean, half = mean_ci(judged_under[label])
        return {"label": label, "mean": dict(zip(objectives, mean.tolist())), "ci95": dict(zip(objectives, half.tolist()))}

    grid_rows = [{**row(label), "weights": w.tolist()} for label, w in zip(grid_weights, grid)]
    points = np.array([[r["mean"][o] for o in objectives] for r in grid_rows])
    front = pareto_mask(points)
    for r, on in zip(grid_rows, front):
        r["on_front"] = bool(on)
    extra_rows = []
    for name, w in named.items():
        per_prompt = combined_reward(judged_under[name], w)  # judged under the row's own weights
        m, h = mean_ci(per_prompt.unsqueeze(-1))
        # Per-prompt values let runs on the same prompts be compared pairwise (tighter than two CIs).
        extra_rows.append({**row(name), "combined": {"mean": float(m[0]), "ci95": float(h[0]),
                                                     "per_prompt": per_prompt.tolist()}})

    # Alignment gap against the oracle weights w*(x) = softmax(r~(x, y_w) / tau) of each prompt's chosen reply;
    # it needs shared candidates to pick from, so a WiC policy (one answer per preference) has none.
    gaps = {}
    if selection is not None:
        from preforch.orchestrator.fit import preference_targets

        oracle = preference_targets(ensemble, data, tau, progress=False)
        for name, w in {**named, "random": random_simplex(len(prompts), k, cfg.seed)}.items():
            m, h = mean_ci(alignment_gap(selection, oracle, w).unsqueeze(-1))
            gaps[name] = {"mean": float(m[0]), "ci95": float(h[0])}

    result = {
        "config": asdict(cfg),
        "objectives": objectives,
        "method": cfg.method,
        "policy": cfg.policy,
        "judge": cfg.judge or cfg.ensemble,
        "num_prompts": len(prompts),
        "sources": sorted(set(data.sources)),
        "num_candidates": samples_per_prompt(cfg),
        "reference_point": list(cfg.reference_point),
        "grid": grid_rows,
        "rows": extra_rows,
        "hypervolume": hypervolume(points, cfg.reference_point),
        "steering": steering_monotonicity(grid, torch.stack([judged_under[label] for label in grid_weights]).numpy(), objectives),
        "alignment_gap": gaps,
        "tag_reading": reading,
        "compute": {**gen_info, "scoring_s": scoring_s, "responses_scored": scored,
                    "total_s": time.perf_counter() - started},
    }
    from preforch.evaluation.report import write_evaluation_report

    write_evaluation_report(Path(cfg.output_dir), result)
    return result
