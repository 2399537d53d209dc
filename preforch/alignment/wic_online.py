"""Online stage of Pro-WiC / RiC: sample under chosen preferences, relabel, filter, mix, SFT; repeated.

Each iteration writes OUTPUT_DIR/online_samples_<t>.jsonl (every generated sample with its scores, relabelled
conditioning and whether it was kept), saves OUTPUT_DIR/policy and updates the accounting in
OUTPUT_DIR/wic_run.json, so `--resume` continues after the last finished iteration.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from preforch.alignment.best_of_n import SamplingConfig, sample_candidates
from preforch.alignment.wic import (RUN_FILE, Scorer, WicSpec, conditioning_values, load_wic_spec, offline_samples,
                                    quantile_thresholds, rejection_mask, sft, sft_rows, turns_note, write_run)
from preforch.config import WicConfig
from preforch.data.loaders import load_many
from preforch.data.schema import Message
from preforch.data.weights import random_simplex
from preforch.errors import ConfigError
from preforch.io import atomic_write_text
from preforch.orchestrator.preference import load_orchestrator, preference_weights
from preforch.rewards.ensemble import check_objectives


def choose_preferences(source: str, prompts: Sequence[Sequence[Message]], objectives: Sequence[str],
                       orchestrator, seed: int) -> torch.Tensor:
    """Preferences [P, K] to sample under: f_phi(x) (Pro-WiC), Dirichlet(1) draws (RiC-online) or uniform."""
    if source == "orchestrator":
        return preference_weights(None, prompts, objectives, orchestrator)
    if source == "random":
        return random_simplex(len(prompts), len(objectives), seed)
    if source == "uniform":
        return torch.full((len(prompts), len(objectives)), 1 / len(objectives))
    raise ConfigError(f"preference_source: expected orchestrator, random or uniform, got {source!r}")


@dataclass
class OnlineBatch:
    """One iteration's samples: N = P * num_generations rows, prompts without tags."""

    prompts: list  # [N] chat prompts
    replies: list[str]  # [N]
    preferences: torch.Tensor  # [N, K] preference each was sampled under
    prompt_values: torch.Tensor  # [N, K] what the prompt carried (weights, or RiC target scores)
    scores: torch.Tensor  # [N, K] normalised scores obtained
    values: torch.Tensor  # [N, K] relabelled conditioning (Eq. 10 self-weights, or the scores)
    kept: torch.Tensor  # [N] bool: passed the rejection filter and is not empty
    generation_seconds: float
    scoring_seconds: float


def collect_online_samples(model, tokenizer, prompts: Sequence[Sequence[Message]], preferences: torch.Tensor,
                           spec: WicSpec, scorer: Scorer, thresholds: torch.Tensor, sampling: SamplingConfig) -> OnlineBatch:
    """Render each prompt with its preference [P, K], sample `sampling.num_candidates` replies, score them on the
    untagged prompt, relabel with the scores obtained, and mark those passing `rejection_mask`. Empty replies
    are never kept (the data loaders refuse them too)."""
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
    return OnlineBatch(flat_prompts, replies, preferences.repeat_interleave(repeat, 0),
                       spec.prompt_values(preferences).repeat_interleave(repeat, 0), scores,
                       conditioning_values(spec.method, scores, spec.tau), rejection_mask(scores, thresholds) & nonempty,
                       t1 - t0, t2 - t1)


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


def _write_samples(path: Path, t: int, batch: OnlineBatch) -> None:
    rows = [{"iteration": t, "prompt": list(batch.prompts[i]), "preference": batch.preferences[i].tolist(),
             "prompt_values": batch.prompt_values[i].tolist(), "response": batch.replies[i],
             "scores": batch.scores[i].tolist(), "relabelled": batch.values[i].tolist(), "kept": bool(batch.kept[i])}
            for i in range(len(batch.replies))]
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


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
    thresholds = quantile_thresholds(off_scores, cfg.filter_quantile)  # fixed by the offline data, as in RiC
    off_values = conditioning_values(cfg.method, off_scores, spec.tau)
    sampling = SamplingConfig(cfg.num_generations, cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.generation_batch_size)
    out = Path(cfg.output_dir)
    iterations, policy = resume_point(cfg)
    if iterations:
        print(f"resuming after online iteration {len(iterations) - 1} from {policy}", flush=True)
    for t in range(len(iterations), cfg.iterations):
        start = t * cfg.online_prompts  # a fresh slice each iteration, wrapping around a small online set
        prompts = [online[(start + i) % len(online)].prompt for i in range(cfg.online_prompts)]
        preferences = choose_preferences(cfg.preference, prompts, objectives, orchestrator, cfg.seed + t)
        set_seed(cfg.seed + t)
        model, tok = load_policy(policy, trust_remote_code=cfg.trust_remote_code)
        batch = collect_online_samples(model, tok, prompts, preferences, spec, scorer, thresholds, sampling)
        del model
        kept = batch.kept.nonzero().flatten().tolist()
        mixed = random.Random(cfg.seed + t).sample(range(len(off_replies)), min(cfg.offline_mix, len(off_replies)))
        rows = (sft_rows([batch.prompts[i] for i in kept], [batch.replies[i] for i in kept], batch.values[kept], spec)
                + sft_rows([off_prompts[i] for i in mixed], [off_replies[i] for i in mixed], off_values[mixed], spec))
        _write_samples(out / f"online_samples_{t}.jsonl", t, batch)
        step = sft(cfg, policy, rows, cfg.sft_steps_per_iteration, spec, cfg.seed + t) if rows else {"sft_samples": 0}
        policy = str(out / "policy") if rows else policy
        n = len(batch.replies)
        iterations.append({"iteration": t, "prompts": len(prompts), "generated": n, "kept": len(kept),
                           "empty": sum(not r.strip() for r in batch.replies),
                           "kept_fraction": len(kept) / n if n else 0.0, "offline_mixed": len(mixed),
                           "thresholds": thresholds.tolist(),
                           "mean_scores_generated": dict(zip(objectives, batch.scores.mean(0).tolist())),
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
