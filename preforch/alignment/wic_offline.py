"""Offline stage of Pro-WiC / RiC: SFT on every reply of the preference data, each conditioned on its own scores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from preforch.alignment.config import WicConfig
from preforch.alignment.wic import Scorer, conditioning_values, make_spec, offline_samples, sft, sft_rows, write_run
from preforch.models import resolve


def run_offline(cfg: WicConfig, objectives: Sequence[str], scorer: Scorer) -> dict:
    """Score chosen and rejected replies, label each with its conditioning values, SFT for `cfg.max_steps`."""
    t0 = time.perf_counter()
    prompts, replies, scores = offline_samples(cfg, scorer)
    scoring_seconds = time.perf_counter() - t0
    spec = make_spec(cfg.method, objectives, cfg.tau if cfg.tau is not None else 1.0, scores)
    rows = sft_rows(prompts, replies, conditioning_values(cfg.method, scores, spec.tau), spec)  # validates tags first
    step = sft(cfg, resolve(cfg.policy), rows, cfg.max_steps, spec, cfg.seed)
    record = {"spec": spec.to_dict(), "offline_samples": len(replies), "scoring_seconds": scoring_seconds, **step,
              "policy": str(Path(cfg.output_dir) / "policy")}
    write_run(cfg, record)
    return record
