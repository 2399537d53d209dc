"""What every TRL-based trainer here shares: device arguments, the JSONL step log, the LoRA config, saving the
final policy."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from pathlib import Path

from preforch.config import typed_fields
from preforch.data.loaders import load_many
from preforch.errors import ConfigError

LOG_FILE = "log.jsonl"


def peak_memory_mb() -> dict[str, float]:
    """This process's peak resident memory so far (`peak_rss_mb`) and, on a GPU, its peak allocated CUDA memory
    (`peak_cuda_mb`), in MiB: what a method costs beside its step time."""
    import sys

    import torch

    try:
        import resource
    except ImportError:  # Windows has no getrusage
        return {}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if sys.platform == "darwin":  # bytes there
        peak /= 1024
    out = {"peak_rss_mb": round(peak, 1)}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def read_log(path: Path) -> list[dict]:
    """The rows `jsonl_logger` wrote to `path`, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def jsonl_logger(path: Path):
    """A `TrainerCallback` writing every log event (loss, KL, per-objective rewards, ..., and the peak memory so
    far) as one JSON line, for plots, cost comparisons and resumes."""
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs, **peak_memory_mb()}) + "\n")

    return JsonlLog()


def device_args(pad_to_multiple_of: int | None = None) -> dict:
    """TRL config arguments every trainer here shares: CPU when there is no GPU, bf16 where it is fast
    (`fast_bf16`), activation checkpointing off on a CPU only (it recomputes activations to save memory a CPU
    has plenty of; on a GPU TRL's default stays), and padded lengths rounded up to `models.length_bucket()` on a
    CPU with bf16, which bounds the memory oneDNN keeps per input shape (a GRPO run with free lengths grew ~16 MB
    per step). `pad_to_multiple_of` overrides; elsewhere TRL's default stays.
    """
    import torch

    from preforch.models import fast_bf16, length_bucket

    if pad_to_multiple_of is None:
        pad_to_multiple_of = length_bucket() or "auto"
    on_cpu = not torch.cuda.is_available()
    return dict(use_cpu=on_cpu, bf16=fast_bf16(), pad_to_multiple_of=pad_to_multiple_of,
                **({"activation_checkpointing": False} if on_cpu else {}))


def check_trl_fields(config_cls, overrides: dict) -> dict:
    """`overrides` (a recipe's `trl:` block or `--trl.FIELD` values) converted to the types of `config_cls`'s fields
    (a TRL config such as GRPOConfig); a `ConfigError` naming every key it has no field for, or a value of the wrong
    type, before anything loads."""
    from dataclasses import fields

    import trl

    unknown = sorted(set(overrides) - {f.name for f in fields(config_cls)})
    if unknown:
        raise ConfigError(f"trl: {config_cls.__name__} (TRL {trl.__version__}) has no field(s) {unknown}")
    return typed_fields(config_cls, overrides, "trl.", loose_str=True)


def trl_config(config_cls, ours: dict, overrides: dict):
    """`config_cls(**ours)` with the user's `trl:` block on top: any field of the TRL config is reachable, preforch's
    own settings stay where the block is silent; unknown fields are refused by name (`check_trl_fields`)."""
    return config_cls(**{**ours, **check_trl_fields(config_cls, overrides)})


def fit_prompts(tokenizer, prompts, max_tokens: int) -> list[tuple[dict, ...]]:
    """Each chat prompt within `max_tokens` tokens of `tokenizer`'s chat template (generation prompt included):
    the oldest turns go first (`schema.trim_dialogue`); a last user turn still too long keeps its last tokens.
    `max_tokens` 0 keeps every prompt whole.

    Why: TRL's GRPO / RLOO trainers (>= 1.13) no longer cut prompts, and every prompt of a batch is padded to the
    longest; HH-RLHF dialogues reach ~1,000 SmolLM2 tokens (median 125), and one 16-completion CPU GRPO step on
    whole prompts peaked at 19 GB of resident memory (docs/results.md, MOSLIM RL).
    """
    from preforch.data.schema import trim_dialogue

    if not max_tokens:
        return [tuple(p) for p in prompts]

    def count(messages) -> int:
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    fitted = []
    for prompt in prompts:
        messages = [dict(m) for m in trim_dialogue(prompt, count, max_tokens)]
        while (overflow := count(messages) - max_tokens) > 0:  # a loop: decoding can re-tokenise a cut differently
            ids = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
            if len(ids) <= 1:  # the template alone is over budget: keep one token of the question
                break
            messages[-1]["content"] = tokenizer.decode(ids[min(overflow, len(ids) - 1):])
        fitted.append(tuple(messages))
    return fitted


def release_memory() -> None:
    """Return the heap's free pages to the OS (glibc `malloc_trim`; a no-op elsewhere).

    Why: each RL step allocates and frees logits of [batch, length, vocab] floats (~100 MB for SmolLM2's 49k
    vocabulary) across threads; glibc keeps the freed pages in its arenas, so resident memory of a long CPU run
    climbed ~0.2 GB per step (docs/results.md) although nothing stayed alive.
    """
    libc = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None
    if trim is not None:
        trim(0)


def memory_releaser():
    """A `TrainerCallback` calling `release_memory` after every step (bounded memory in long runs)."""
    from transformers import TrainerCallback

    class ReleaseMemory(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            release_memory()

    return ReleaseMemory()


def lora_config(use_lora: bool, r: int, alpha: int):
    """peft LoRA on every linear layer of a causal LM, or None for full fine-tuning."""
    if not use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear", task_type="CAUSAL_LM")


def save_policy(trainer, tokenizer, folder: Path, merge_lora: bool, extra_json: dict | None = None,
                card: str | None = None) -> None:
    """Save the trained model (LoRA merged, so `from_pretrained` loads it alone), its tokenizer, any `extra_json`
    files {name: object} and the model card `card` (README.md) atomically to `folder`; only the main process writes."""
    from preforch.io import atomic_directory, atomic_write_json

    model = trainer.model.merge_and_unload() if merge_lora else trainer.model
    if not trainer.accelerator.is_main_process:
        return
    with atomic_directory(folder) as tmp:
        trainer.accelerator.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name, obj in (extra_json or {}).items():
            atomic_write_json(tmp / name, obj)
        if card:
            (tmp / "README.md").write_text(card, encoding="utf-8")


def rl_prompts(cfg, tokenizer):
    """(prompts fitted to `cfg.max_prompt_tokens` of the policy's tokenizer, their sources) of `cfg.train_data`."""
    data = load_many(cfg.train_data, cfg.max_prompts)
    return fit_prompts(tokenizer, data.prompts, cfg.max_prompt_tokens), data.sources
