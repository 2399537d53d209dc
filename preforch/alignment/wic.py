"""`preforch train-wic`: Pro-WiC and RiC, the preference written into the prompt (DESIGN.md section 1, Eq. 10-11).

Both methods (rows of the WiC-method table, generation/wic_methods.py) fine-tune on `(x (+) c, y)`, `c` rendered by
`preforch.data.conditioning`:
- pro-wic: c = w = softmax(r~(x, y) / tau), the weights of the scores y actually obtained (Eq. 10);
- ric: c = r~(x, y), the normalised scores themselves (RiC, Yang et al. 2024).
Both only over the objectives that apply to (x, y) (`Scores.applies`, DESIGN.md section 8): the softmax runs over
them and the tag names only them, e.g. `<preference helpful=0.40 harmless=0.60>` on a chat reply when exact match
on arithmetic does not apply. At inference a user's full preference names every objective.
Offline stage (`wic_offline.py`): SFT on the chosen and rejected replies of preference data. Online stage
(`wic_online.py`): sample conditioned on preferences, relabel with the obtained scores, keep what passes the
rejection filter, mix with offline samples, SFT again. This module holds the math, the making of the `wic.json` spec
saved with each policy (its reader is `preforch.generation.wic_spec`), and the SFT step both stages share;
`wic_train.py` runs a stage.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import torch

from preforch.alignment.config import WicConfig
from preforch.data.loaders import load_many
from preforch.data.schema import Message
from preforch.errors import ConfigError
from preforch.generation.wic_methods import wic_method
from preforch.generation.wic_spec import SPEC_FILE, WicSpec
from preforch.io import atomic_write_json
from preforch.rewards.scores import Scores, as_scores, masked_quantile

RUN_FILE = "wic_run.json"
# RiC maps a preference onto [low, high] per objective; quantiles rather than min/max keep a few outlier
# replies from setting targets the policy has almost never seen.
SCORE_RANGE_QUANTILES = (0.05, 0.95)

Scorer = Callable[[Sequence[Sequence[Message]], Sequence[str]], Scores]  # normalised scores [B, K], where they apply


def quantile_thresholds(reference: Scores | torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """RiC's filter level per objective: the q-quantile of reference normalised scores over the rows it applies to,
    raised off the column's minimum. reference [M, K] -> [K]; NaN for an objective that applies to no row.

    RiC's rule keeps a sample whose score reaches the quantile (`rejection_mask`). On a column with many ties at
    its bottom, a 0/1 exact match where under 30% of answers are right, the 0.7 quantile is the minimum, a wrong
    answer's score, and `>=` would pass every row. So where the quantile equals the column's minimum the level is
    the smallest applicable value strictly above it: on a 0/1 column only right answers pass on it, and a column
    whose values are all equal (inf: nothing above; all wrong, or all right alike) passes nobody on it.
    """
    s = as_scores(reference)
    level = masked_quantile(s, q)
    lowest = s.values.nan_to_num(torch.inf).amin(0)  # inf where no row applies
    above = torch.where(s.values > lowest, s.values, torch.inf).amin(0)  # NaN > x is False: applicable rows only
    return torch.where(level <= lowest, above, level)


def rejection_mask(normalized: Scores | torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """RiC's online filter: keep a sample if ANY objective that applies to it reaches its threshold.
    normalized [N, K], thresholds [K] -> [N] bool."""
    s = as_scores(normalized)
    return ((s.values >= thresholds) & s.applies).any(-1)


def conditioning_values(method: str, normalized: Scores | torch.Tensor, tau: float) -> Scores:
    """What a sample is labelled with, by its WiC method's row (generation/wic_methods.py): pro-wic self-weights
    (Eq. 10) or, for ric, its own scores, over the objectives that apply to it. [N, K] -> Scores [N, K]."""
    return wic_method(method).labels(as_scores(normalized), tau)


def make_spec(method: str, objectives: Sequence[str], tau: float, offline_scores: Scores | torch.Tensor) -> WicSpec:
    """The spec of a policy trained on samples with normalised scores `offline_scores` [N, K]; each objective's
    score range over the samples it applies to.

    An objective that applies to no offline sample is refused, naming it: no tag of the offline stage would name
    it, and RiC would have no range to map a preference onto (a made-up one would set targets on no evidence).
    """
    s = as_scores(offline_scores)
    absent = [o for o, a in zip(objectives, s.applies.any(0).tolist()) if not a]
    if absent:
        raise ConfigError(f"train_data: objective(s) {absent} apply to none of the {len(s)} offline replies, so the "
                          "offline stage could never condition on them; add training data they apply to")
    low, high = (masked_quantile(s, q) for q in SCORE_RANGE_QUANTILES)
    return WicSpec(method, tuple(objectives), float(tau), tuple(low.tolist()), tuple(high.tolist()))


def offline_samples(cfg: WicConfig, scorer: Scorer) -> tuple[list, list[str], Scores]:
    """Chosen and rejected replies of `cfg.train_data`, all as samples: (prompts, replies, normalised scores [N, K])."""
    data = load_many(cfg.train_data, cfg.max_pairs, cfg.max_user_turns)
    if not len(data):
        raise ConfigError(f"train_data {cfg.train_data}: no preference pairs" + turns_note(cfg))
    prompts, replies = data.all_replies()
    return prompts, replies, scorer(prompts, replies)


def turns_note(cfg: WicConfig) -> str:
    """What an empty-data error adds when --max_user_turns filtered the data."""
    return f" with at most {cfg.max_user_turns} user turn(s) (--max_user_turns)" if cfg.max_user_turns else ""


def sft_rows(prompts: Sequence[Sequence[Message]], replies: Sequence[str], values: Scores | torch.Tensor,
             spec: WicSpec) -> list[dict]:
    """TRL conversational prompt-completion rows: prompt = x with the tag of its values [N, K] (naming the
    objectives that apply), completion = y."""
    return [{"prompt": list(p), "completion": [{"role": "assistant", "content": y}]}
            for p, y in zip(spec.tagged(prompts, values), replies)]


def sft(cfg: WicConfig, start: str, rows: list[dict], max_steps: int, spec: WicSpec, seed: int) -> dict:
    """SFT `start` (a model folder) on `rows` for `max_steps` with TRL's SFTTrainer (loss on the completion only,
    its default for prompt-completion data); save it, LoRA merged, with `wic.json` to OUTPUT_DIR/policy.
    Returns the step's accounting."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from preforch.alignment.trl_utils import LOG_FILE, device_args, jsonl_logger, lora_config, save_policy, trl_config
    from preforch.hub import model_card
    from preforch.models import load_pretrained

    out = Path(cfg.output_dir)
    t0 = time.perf_counter()
    tok = load_pretrained(AutoTokenizer, start, "policy tokenizer", trust_remote_code=cfg.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    args = trl_config(SFTConfig, dict(  # save_strategy "no": TRL checkpoints by default, slower here
        output_dir=str(out), max_steps=max_steps, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size, max_length=cfg.max_length, logging_steps=1,
        save_strategy="no", report_to=cfg.report_to, seed=seed, **device_args(),
        model_init_kwargs={"trust_remote_code": cfg.trust_remote_code}), cfg.trl)
    trainer = SFTTrainer(model=start, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=lora_config(cfg.use_lora, cfg.lora_r, cfg.lora_alpha), callbacks=[jsonl_logger(out / LOG_FILE)])
    trainable = len(trainer.train_dataset)  # TRL drops rows whose completion max_length cut off entirely
    trainer.train()
    card = model_card("policy", cfg.policy, cfg.train_data, spec.objectives, {},
                      f"Weights in context ({spec.method}, PRO Eq. 10-11): TRL SFT, {cfg.stage} stage, {len(rows)} samples "
                      f"conditioned on their {spec.kind} in a prompt tag (preforch/data/conditioning.py), "
                      f"{trainer.state.global_step} steps, learning rate {cfg.learning_rate}, seed {seed}. Give it a "
                      "preference with the same tag, e.g. `<preference helpful=0.80 harmless=0.20>` before the user's message.")
    save_policy(trainer, tok, out / "policy", merge_lora=cfg.use_lora, extra_json={SPEC_FILE: spec.to_dict()}, card=card)
    tokens = max((log["num_tokens"] for log in trainer.state.log_history if "num_tokens" in log), default=0)
    return {"sft_samples": len(rows), "sft_samples_dropped_too_long": len(rows) - trainable,
            "sft_steps": trainer.state.global_step, "sft_tokens": int(tokens), "sft_seconds": time.perf_counter() - t0}


def write_run(cfg: WicConfig, record: dict) -> None:
    """Put this stage's config and accounting under its key ('offline' / 'online') of OUTPUT_DIR/wic_run.json,
    keeping the other stage's entry when both share the folder."""
    file = Path(cfg.output_dir) / RUN_FILE
    try:
        run = json.loads(file.read_text()) if file.is_file() else {}
    except json.JSONDecodeError:
        run = {}
    run[cfg.stage] = {"config": asdict(cfg), **record}
    atomic_write_json(file, run)
