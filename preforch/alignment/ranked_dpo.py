"""`train-policy --algorithm ranked-dpo`: DPO on reward-ranked pairs, one offline round of iterative / online DPO
(RLHF Workflow, Dong et al. 2024: the best and worst of N samples under the reward form a pair).

N = `num_generations` candidates per training prompt are sampled once from the starting policy and cached on disk
under a key of everything that determines them (policy, prompts, sampling settings, seed), so every arm of a
comparison ranks the same candidates. An arm scores them with its method's reward (w(x) . r~ under its own
weights), pairs the best (chosen) with the worst (rejected) of each prompt's candidates, and trains TRL's
DPOTrainer on the pairs; a prompt whose candidates all tie gives no pair. OUTPUT_DIR/ranked_pairs.jsonl records
each prompt's pair (null where tied) and rewards, so `pair_agreement` tells how often two arms' labels differ
before any training (docs/design.md, "What a per-prompt weight changes in each training signal").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import torch

from preforch.alignment.algorithms import TrainingAlgorithm
from preforch.data.schema import Message
from preforch.errors import DataError
from preforch.generation.sampling import SamplingConfig, sample_candidates
from preforch.io import atomic_write_json, atomic_write_text, read_json, read_jsonl

PAIRS_FILE = "ranked_pairs.jsonl"
CANDIDATES_FOLDER = "ranked_candidates"  # beside OUTPUT_DIR: rl-compare's arms are its sibling folders


def rank_pairs(rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best-versus-worst labelling of N candidates per prompt: rewards [P, N] -> (chosen [P], the argmax; rejected
    [P], the argmin; kept [P] bool, False where every candidate ties, which gives no pair)."""
    best, chosen = rewards.max(-1)
    worst, rejected = rewards.min(-1)
    return chosen, rejected, best > worst


def sampling_config(cfg) -> SamplingConfig:
    """The candidates' sampling: N = num_generations replies of max_completion_length tokens at the training
    temperature, no nucleus cut (TRL's top_p), seeded by the run's seed."""
    return SamplingConfig(num_candidates=cfg.num_generations, max_new_tokens=cfg.max_completion_length,
                          temperature=cfg.temperature, top_p=1.0, seed=cfg.seed)


def candidates_file(cfg, policy: str, prompts: Sequence[Sequence[Message]]) -> tuple[Path, dict]:
    """(cache file, its settings) of `policy`'s candidates for `prompts`: CANDIDATES_CACHE (default
    OUTPUT_DIR/../ranked_candidates) / <hash of policy, sampling settings with seed, and prompts>.json."""
    settings = {"policy": str(policy), "sampling": asdict(sampling_config(cfg))}
    blob = json.dumps({**settings, "prompts": [list(p) for p in prompts]}, sort_keys=True, ensure_ascii=False)
    folder = Path(cfg.candidates_cache) if cfg.candidates_cache else Path(cfg.output_dir).parent / CANDIDATES_FOLDER
    return folder / f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}.json", settings


def starting_candidates(cfg, policy: str, prompts: Sequence[Sequence[Message]]) -> list[list[str]]:
    """[P][N] candidates of the starting `policy` for chat `prompts`: from the cache, else sampled (torch seeded
    with the run's seed) and cached."""
    from preforch.models import load_policy

    path, settings = candidates_file(cfg, policy, prompts)
    if path.is_file():
        candidates = read_json(path, DataError)["candidates"]
        if len(candidates) != len(prompts):
            raise DataError(f"{path}: candidates of {len(candidates)} prompts, expected {len(prompts)} (delete it to "
                            "resample)")
        print(f"{cfg.algorithm}: candidates read from {path}", flush=True)
        return candidates
    model, tokenizer = load_policy(policy, trust_remote_code=cfg.trust_remote_code)
    torch.manual_seed(cfg.seed)
    candidates = sample_candidates(model, tokenizer, prompts, sampling_config(cfg))
    atomic_write_json(path, {**settings, "prompts": [list(p) for p in prompts], "candidates": candidates})
    return candidates


def candidate_rewards(rewards: Sequence[Callable], dataset, candidates: list[list[str]]) -> torch.Tensor:
    """Rewards [P, N, R] of each prompt's N candidates under R TRL reward functions, called as TRL calls them: one
    row per (prompt, candidate), every other column of the prompt `dataset` (`weights`, ...) repeated per row; a
    reward's None (it does not apply) becomes NaN."""
    n = len(candidates[0])
    rows = dataset.select([i for i in range(len(dataset)) for _ in range(n)]).to_dict()
    prompts = rows.pop("prompt")
    completions = [[{"role": "assistant", "content": c}] for row in candidates for c in row]
    columns = [[float("nan") if v is None else v for v in reward(prompts, completions, **rows)] for reward in rewards]
    return torch.tensor(columns, dtype=torch.float32).T.reshape(len(dataset), n, len(rewards))


def pair_records(dataset, candidates: list[list[str]], rewards: torch.Tensor, extra: dict[str, list] | None = None
                 ) -> list[dict]:
    """One record per prompt of `dataset`: its prompt and source, the chosen and rejected candidate (None where
    the candidates tie) and their rewards, from `rank_pairs` over rewards [P, N]; `extra`: more fields, a list of P
    values each."""
    chosen, rejected, kept = rank_pairs(rewards)
    sources = dataset["source"] if "source" in dataset.column_names else [None] * len(dataset)
    records = [{"prompt": prompt, "source": source,
                "chosen": row[c] if keep else None, "rejected": row[r] if keep else None,
                "chosen_reward": reward[c].item(), "rejected_reward": reward[r].item()}
               for prompt, source, row, reward, c, r, keep in zip(dataset["prompt"], sources, candidates, rewards,
                                                                   chosen.tolist(), rejected.tolist(), kept.tolist())]
    for name, values in (extra or {}).items():
        for record, value in zip(records, values):
            record[name] = value
    return records


def pair_dataset(cfg, records: list[dict], label: str, columns: Sequence[str] = ()):
    """The conversational prompt / chosen / rejected dataset (plus the records' `columns`) of the records that hold a
    pair; every record goes to OUTPUT_DIR/ranked_pairs.jsonl. `label` names the algorithm in messages."""
    from datasets import Dataset

    atomic_write_text(Path(cfg.output_dir) / PAIRS_FILE,
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    pairs = [r for r in records if r["chosen"] is not None]
    print(f"{label}: {len(pairs)} pairs from {len(records)} prompts ({len(records) - len(pairs)} tied, dropped)",
          flush=True)
    if not pairs:
        raise DataError(f"{label}: every prompt's {cfg.num_generations} candidates tie under its reward: no pair "
                        "to train on")
    return Dataset.from_list([{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
                               "rejected": [{"role": "assistant", "content": r["rejected"]}],
                               **{c: r[c] for c in columns}} for r in pairs])


def ranked_pairs(cfg, policy: str, setup):
    """The dataset DPO trains on (`pair_dataset`), from `policy`'s cached candidates for the method's prompts
    ranked under its reward."""
    candidates = starting_candidates(cfg, policy, list(setup.dataset["prompt"]))
    rewards = candidate_rewards([setup.reward], setup.dataset, candidates)[..., 0]
    return pair_dataset(cfg, pair_records(setup.dataset, candidates, rewards), "ranked-dpo")


def pair_agreement(a: Path, b: Path) -> dict:
    """How often two arms' ranked pairs (their ranked_pairs.jsonl, the same prompts and candidates) differ:
    {"overall": {"prompts", "differ", "share"}, "by_source": {source: the same}}. A prompt paired in one arm and
    tied in the other differs."""
    rows_a, rows_b = ([row for _, row in read_jsonl(path)] for path in (a, b))
    if [r["prompt"] for r in rows_a] != [r["prompt"] for r in rows_b]:
        raise DataError(f"{a} and {b}: ranked pairs of different prompts (compare arms that share candidates)")
    differ: dict[str, list[bool]] = {}
    for x, y in zip(rows_a, rows_b):
        differ.setdefault(x["source"], []).append((x["chosen"], x["rejected"]) != (y["chosen"], y["rejected"]))

    def share(flags: list[bool]) -> dict:
        return {"prompts": len(flags), "differ": sum(flags), "share": sum(flags) / len(flags) if flags else None}

    return {"overall": share([f for flags in differ.values() for f in flags]),
            "by_source": {source: share(flags) for source, flags in differ.items()}}


class RankedDpo(TrainingAlgorithm):
    """TRL's DPOTrainer on the best-versus-worst pairs of the starting policy's cached candidates under the
    method's reward (`ranked_pairs`); LoRA's reference is the adapter off, full fine-tuning's a frozen copy."""

    config_class = "trl:DPOConfig"

    @classmethod
    def config_fields(cls, cfg) -> dict:
        return {"beta": cfg.beta}

    @classmethod
    def trainer(cls, cfg, model, setup, args, tokenizer, peft_config, callbacks):
        from trl import DPOTrainer

        return DPOTrainer(model=model, args=args, train_dataset=ranked_pairs(cfg, model, setup),
                          processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
