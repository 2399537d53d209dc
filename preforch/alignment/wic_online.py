"""Online stage of Pro-WiC / RiC: sample under chosen preferences, relabel, filter, mix, SFT; repeated.

The filter is RiC's (YangRui2015/RiC, `ric/utils.py` merge_dataset): each round keeps a generated sample when
some objective that applies to it reaches the `filter_quantile` of *that round's generated* scores over the samples
it applies to (raised off a 0/1 column's minimum, `quantile_thresholds`); the offline samples mixed
back in pass the same test against the offline scores' quantiles; the kept samples of every round so far are
trained on again (RiC concatenates its online data across rounds). `--online_filter offline-thresholds` keeps the
earlier preforch stage (thresholds from the offline scores, an unfiltered offline mix, each round alone) for
comparison.

Each iteration writes OUTPUT_DIR/online_samples_<t>.jsonl (every generated sample with its scores, relabelled
conditioning and whether it was kept; null where an objective does not apply), saves OUTPUT_DIR/policy and updates
the accounting in OUTPUT_DIR/wic_run.json (null for a threshold or mean no sample sets), so `--resume` continues
after the last finished iteration.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from preforch.alignment.config import WicConfig
from preforch.alignment.wic import (RUN_FILE, Scorer, conditioning_values, offline_samples, quantile_thresholds,
                                    rejection_mask, sft, sft_rows, turns_note, write_run)
from preforch.data.loaders import load_many
from preforch.data.schema import Message
from preforch.data.weights import random_simplex, ric_goal_weights
from preforch.errors import ConfigError
from preforch.generation.sampling import SamplingConfig, sample_candidates
from preforch.generation.wic_spec import WicSpec, load_wic_spec
from preforch.io import atomic_write_text
from preforch.orchestrator.preference import load_orchestrator, preference_weights
from preforch.rewards.ensemble import check_objectives
from preforch.rewards.scores import Scores


def choose_preferences(source: str, prompts: Sequence[Sequence[Message]], objectives: Sequence[str],
                       orchestrator, seed: int) -> torch.Tensor:
    """Preferences [P, K] to sample under: f_phi(x) (Pro-WiC), Dirichlet(1) draws (RiC-online), RiC's own goals
    (every objective but one at the top, `ric_goal_weights`) or uniform."""
    if source == "orchestrator":
        return preference_weights(None, prompts, objectives, orchestrator)
    if source == "random":
        return random_simplex(len(prompts), len(objectives), seed)
    if source == "ric-goals":
        return ric_goal_weights(len(prompts), len(objectives), seed)
    if source == "uniform":
        return torch.full((len(prompts), len(objectives)), 1 / len(objectives))
    raise ConfigError(f"preference_source: expected orchestrator, random, ric-goals or uniform, got {source!r}")


@dataclass
class OnlineBatch:
    """One iteration's samples: N = P * num_generations rows, prompts without tags."""

    prompts: list  # [N] chat prompts
    replies: list[str]  # [N]
    preferences: torch.Tensor  # [N, K] preference each was sampled under
    prompt_values: torch.Tensor  # [N, K] what the prompt carried (weights, or RiC target scores)
    scores: Scores  # [N, K] normalised scores obtained, where each objective applies
    values: Scores  # [N, K] relabelled conditioning (Eq. 10 self-weights, or the scores), where each applies
    kept: torch.Tensor  # [N] bool: passed the rejection filter and is not empty
    thresholds: torch.Tensor  # [K] the filter's levels this round (NaN: no sample it applies to, inf: none passes)
    generation_seconds: float
    scoring_seconds: float


def round_thresholds(generated: Scores | torch.Tensor, usable: torch.Tensor, quantile: float) -> torch.Tensor:
    """RiC's filter levels for one round: the per-objective `quantile` of the round's own generated scores
    (generated [N, K], over the rows where `usable` [N] bool; all rows if none is) -> [K]."""
    return quantile_thresholds(generated[usable] if bool(usable.any()) else generated, quantile)


def offline_pool(offline: Scores | torch.Tensor, thresholds: torch.Tensor) -> list[int]:
    """Indices of the offline samples (scores [M, K]) RiC may mix back in: those passing `rejection_mask` at the
    offline scores' own quantiles `thresholds` [K] (RiC's select_data_with_quantile on its offline data)."""
    return rejection_mask(offline, thresholds).nonzero().flatten().tolist()


def collect_online_samples(model, tokenizer, prompts: Sequence[Sequence[Message]], preferences: torch.Tensor,
                           spec: WicSpec, scorer: Scorer, thresholds: torch.Tensor | None, quantile: float,
                           sampling: SamplingConfig) -> OnlineBatch:
    """Render each prompt with its preference [P, K], sample `sampling.num_candidates` replies, score them on the
    untagged prompt, relabel with the scores obtained, and mark those passing `rejection_mask` at `thresholds`
    [K] (None: RiC's, the `quantile` of this round's scores). Empty replies are never kept (the data loaders
    refuse them too)."""
    t0 = time.perf_counter()
    candidates = sample_candidates(model, tokenizer, spec.condition(prompts, preferences), sampling)
    t1 = time.perf_counter()
    per_prompt = [len(c) for c in candidates]
    flat_prompts = [p for p, n in zip(prompts, per_prompt) for _ in range(n)]
    replies = [r for c in candidates for r in c]
    scores = scorer(flat_prompts, replies)
    t2 = time.perf_counter()
    repeat = torch.tensor(per_prompt)
    nonempty = torch.tensor([bool(r.strip()) for r in replies], dtype=torch.bool)
    thresholds = round_thresholds(scores, nonempty, quantile) if thresholds is None else thresholds
    return OnlineBatch(flat_prompts, replies, preferences.repeat_interleave(repeat, 0),
                       spec.prompt_values(preferences).repeat_interleave(repeat, 0), scores,
                       conditioning_values(spec.method, scores, spec.tau), rejection_mask(scores, thresholds) & nonempty,
                       thresholds, t1 - t0, t2 - t1)


def _check_inputs(cfg: WicConfig, objectives: Sequence[str]):
    """Every check that needs no model: (spec, orchestrator or None, shuffled online data)."""
    spec = load_wic_spec(cfg.policy)
    if spec.method != cfg.method:
        raise ConfigError(f"{cfg.policy}: trained with method {spec.method!r}, but --method is {cfg.method!r}")
    if cfg.tau is not None and cfg.tau != spec.tau:
        raise ConfigError(f"--tau {cfg.tau} differs from the tau {spec.tau} {cfg.policy} was trained with")
    check_objectives(objectives, spec.objectives, f"policy {cfg.policy} ({spec.method})")
    orchestrator = None
    if cfg.preference == "orchestrator":  # loaded once: its predictions are cached across iterations
        orchestrator = load_orchestrator(cfg.orchestrator, objectives)
    online = load_many(cfg.online_data, max_user_turns=cfg.max_user_turns)
    if not len(online):
        raise ConfigError(f"online_data {cfg.online_data}: no prompts" + turns_note(cfg))
    return spec, orchestrator, online.shuffled(cfg.seed)


def read_kept_samples(path: Path) -> tuple[list, list[str], Scores]:
    """(prompts, replies, relabelled values [M, K], null read as not applicable) of the samples an earlier round
    kept, from its online_samples_<t>.jsonl: what a resumed RiC stage accumulates."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [r for r in rows if r["kept"]]
    values = torch.tensor([[math.nan if v is None else v for v in r["relabelled"]] for r in kept], dtype=torch.float32)
    return [tuple(r["prompt"]) for r in kept], [r["response"] for r in kept], Scores.from_nan(values)


def _write_samples(path: Path, t: int, batch: OnlineBatch) -> None:
    rows = [{"iteration": t, "prompt": list(batch.prompts[i]), "preference": batch.preferences[i].tolist(),
             "prompt_values": batch.prompt_values[i].tolist(), "response": batch.replies[i],
             "scores": batch.scores[i].tolist(), "relabelled": batch.values[i].tolist(), "kept": bool(batch.kept[i])}
            for i in range(len(batch.replies))]
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def finite_or_null(values: torch.Tensor) -> list[float | None]:
    """[K] -> a JSON list, None for a non-finite entry (a threshold no sample sets, or one nobody may pass)."""
    return [x if math.isfinite(x) else None for x in values.tolist()]


# settings that may change between a run and its --resume
RESUMABLE = ("resume", "iterations", "report_to")


def resume_point(cfg: WicConfig) -> tuple[list[dict], str]:
    """(accounting of the finished iterations, policy to continue from): from OUTPUT_DIR/wic_run.json under
    --resume, else none and `cfg.policy`. Refuses a record written with other settings."""
    file = Path(cfg.output_dir) / RUN_FILE
    record = json.loads(file.read_text()).get("online") if cfg.resume and file.is_file() else None
    if not record:
        return [], cfg.policy
    saved, now = record["config"], asdict(cfg)
    changed = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in now.items() if k not in RESUMABLE and saved.get(k) != v]
    if changed:
        raise ConfigError(f"--resume: {file} was written with other settings ({'; '.join(changed)}); "
                          "use those, or another --output_dir without --resume")
    return record["iterations"], record["policy"]


def run_online(cfg: WicConfig, objectives: Sequence[str], scorer: Scorer) -> dict:
    """`cfg.iterations` rounds of sample -> relabel -> filter -> mix -> SFT, starting from `cfg.policy`."""
    from transformers import set_seed

    from preforch.models import load_policy

    spec, orchestrator, online = _check_inputs(cfg, objectives)
    t0 = time.perf_counter()
    off_prompts, off_replies, off_scores = offline_samples(cfg, scorer)
    offline_scoring_seconds = time.perf_counter() - t0
    offline_thresholds = quantile_thresholds(off_scores, cfg.filter_quantile)
    ric = cfg.online_filter == "ric"
    off_pool = offline_pool(off_scores, offline_thresholds) if ric else list(range(len(off_replies)))
    off_values = conditioning_values(cfg.method, off_scores, spec.tau)
    sampling = SamplingConfig(cfg.num_generations, cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.generation_batch_size)
    out = Path(cfg.output_dir)
    iterations, policy = resume_point(cfg)
    if iterations:
        print(f"resuming after online iteration {len(iterations) - 1} from {policy}", flush=True)
    kept_so_far = [read_kept_samples(out / f"online_samples_{t}.jsonl") for t in range(len(iterations))] if ric else []
    for t in range(len(iterations), cfg.iterations):
        start = t * cfg.online_prompts  # a fresh slice each iteration, wrapping around a small online set
        prompts = [online[(start + i) % len(online)].prompt for i in range(cfg.online_prompts)]
        preferences = choose_preferences(cfg.preference, prompts, objectives, orchestrator, cfg.seed + t)
        set_seed(cfg.seed + t)
        model, tok = load_policy(policy, trust_remote_code=cfg.trust_remote_code)
        batch = collect_online_samples(model, tok, prompts, preferences, spec, scorer, None if ric else offline_thresholds,
                                       cfg.filter_quantile, sampling)
        del model
        kept = batch.kept.nonzero().flatten().tolist()
        this_round = ([batch.prompts[i] for i in kept], [batch.replies[i] for i in kept], batch.values[kept])
        kept_so_far = [*kept_so_far, this_round] if ric else [this_round]
        mixed = [off_pool[i] for i in random.Random(cfg.seed + t).sample(range(len(off_pool)), min(cfg.offline_mix, len(off_pool)))]
        rows = [r for p, y, v in kept_so_far for r in sft_rows(p, y, v, spec)]
        online_rows = len(rows)
        rows += sft_rows([off_prompts[i] for i in mixed], [off_replies[i] for i in mixed], off_values[mixed], spec)
        _write_samples(out / f"online_samples_{t}.jsonl", t, batch)
        step = sft(cfg, policy, rows, cfg.sft_steps_per_iteration, spec, cfg.seed + t) if rows else {"sft_samples": 0}
        policy = str(out / "policy") if rows else policy
        n = len(batch.replies)
        iterations.append({"iteration": t, "prompts": len(prompts), "generated": n, "kept": len(kept),
                           "empty": sum(not r.strip() for r in batch.replies),
                           "kept_fraction": len(kept) / n if n else 0.0, "online_trained": online_rows,
                           "offline_mixed": len(mixed), "offline_passing_filter": len(off_pool),
                           "thresholds": finite_or_null(batch.thresholds),
                           "mean_scores_generated": dict(zip(objectives, batch.scores.means()[0])),
                           "generation_seconds": batch.generation_seconds, "scoring_seconds": batch.scoring_seconds, **step})
        write_run(cfg, {"spec": spec.to_dict(), "offline_samples": len(off_replies),
                        "offline_scoring_seconds": offline_scoring_seconds, "iterations": iterations,
                        "totals": _totals(iterations), "policy": policy})
    return {"iterations": iterations, "totals": _totals(iterations), "policy": policy}


def _totals(iterations: list[dict]) -> dict:
    keys = ("generated", "kept", "sft_samples", "sft_steps", "sft_tokens", "generation_seconds", "scoring_seconds", "sft_seconds")
    totals = {k: sum(it.get(k, 0) for it in iterations) for k in keys}
    totals["kept_fraction"] = totals["kept"] / totals["generated"] if totals["generated"] else 0.0
    return totals
