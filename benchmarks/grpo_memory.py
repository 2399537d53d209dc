"""Resident memory per step of a CPU GRPO run (Pro-MORLHF on SmolLM2): is it bounded?

    python benchmarks/grpo_memory.py --run runs/quickstart [--steps 200] [--no-release] [--pad_to_multiple_of 1] [--tag NAME]
    python benchmarks/grpo_memory.py --from_progress /tmp/grpo_memory_NAME.progress.jsonl --tag NAME [--no-release]

Records the process's resident set size (VmRSS) after every optimisation step and reports the growth after a
warm-up (default: the first 10% of the steps), target within 10%. `--no-release` turns off the per-step
return of freed heap to the OS (preforch.alignment.trl_utils.release_memory) to show the growth it stops;
`--pad_to_multiple_of 1` turns off the length buckets (trl_utils.device_args) that bound oneDNN's per-shape
kernel memory under CPU bf16.
Writes benchmarks/results/grpo_memory[_TAG].json and a PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from _common import RESULTS, save
from transformers import TrainerCallback

import preforch.alignment.trl_utils as trl_utils
from preforch.alignment.config import PolicyConfig
from preforch.alignment.morlhf import train_policy


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set size (VmRSS) or its peak since the last `reset_peak` (VmHWM), in MiB."""
    for line in open("/proc/self/status"):
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


class RssRecorder(TrainerCallback):
    """After each step (and after the step's memory release): resident memory, and the peak during the step."""

    def __init__(self, progress_file: str):
        self.rows: list[dict] = []
        self.progress_file = progress_file
        self._t0 = time.perf_counter()

    def on_step_begin(self, args, state, control, **kw):
        reset_peak()

    def on_step_end(self, args, state, control, **kw):
        self.rows.append({"step": state.global_step, "rss_mb": rss_mb(), "peak_mb": rss_mb("VmHWM"),
                          "s": time.perf_counter() - self._t0})
        with open(self.progress_file, "a") as f:  # readable while a long run goes on
            f.write(json.dumps(self.rows[-1]) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--policy", default="smollm2")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=4, help="completions per step")
    ap.add_argument("--num_generations", type=int, default=4)
    ap.add_argument("--max_completion_length", type=int, default=32)
    ap.add_argument("--warmup", type=float, default=0.1, help="fraction of steps before growth is measured")
    ap.add_argument("--no-release", dest="release", action="store_false", help="do not hand freed heap back per step")
    ap.add_argument("--pad_to_multiple_of", type=int, default=None,
                    help="length bucket of the batches (default: preforch's, 16 on CPU with bf16; 1 = none)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--from_progress", default=None,
                    help="only summarise the per-step file of a run that was stopped (/tmp/grpo_memory_TAG.progress.jsonl)")
    args = ap.parse_args()

    name = "grpo_memory" + (f"_{args.tag}" if args.tag else "")
    if args.from_progress:
        rows = [json.loads(line) for line in open(args.from_progress) if line.strip()]
        return summarize(args, name, rows, None)
    if not args.release:
        trl_utils.release_memory = lambda: None  # the A/B arm: the same run without the per-step trim
    recorder = RssRecorder(f"/tmp/{name}.progress.jsonl")
    start = rss_mb()
    with tempfile.TemporaryDirectory() as out:
        cfg = PolicyConfig(method="pro-morlhf", policy=args.policy, ensemble=f"{args.run}/rewards",
                           orchestrator=f"{args.run}/orchestrator", max_prompts=256, output_dir=out,
                           max_steps=args.steps, per_device_train_batch_size=args.batch,
                           num_generations=args.num_generations, max_completion_length=args.max_completion_length,
                           save_steps=100_000, logging_steps=1, pad_to_multiple_of=args.pad_to_multiple_of)
        train_policy(cfg, callbacks=(recorder,))
    summarize(args, name, recorder.rows, start)


def summarize(args, name: str, rows: list[dict], start: float | None) -> None:
    """Growth after warm-up (the step at the `args.warmup` fraction), saved as JSON with every step, and a PNG."""
    base = rows[max(int(args.warmup * len(rows)) - 1, 0)]
    after = rows[rows.index(base):]
    bucket = trl_utils.device_args(args.pad_to_multiple_of)["pad_to_multiple_of"]
    save(name, {
        "policy": args.policy, "steps": len(rows), "steps_asked": args.steps, "completions_per_step": args.batch,
        "max_completion_length": args.max_completion_length, "release_memory_per_step": args.release,
        "pad_to_multiple_of": bucket,
        "rss_mb_before_training": start, "rss_mb_after_warmup": base["rss_mb"], "warmup_step": base["step"],
        "rss_mb_final": rows[-1]["rss_mb"], "rss_mb_max_after_warmup": max(r["rss_mb"] for r in after),
        "growth_after_warmup": rows[-1]["rss_mb"] / base["rss_mb"] - 1,
        "in_step_peak_mb_after_warmup": [min(r["peak_mb"] for r in after), max(r["peak_mb"] for r in after)],
        "seconds": rows[-1]["s"], "per_step": rows,
    })
    plot(rows, RESULTS / f"{name}.png", f"GRPO on {args.policy}, {args.batch} completions x "
         f"{args.max_completion_length} tokens per step (release per step: {args.release}, length bucket: {bucket})")


def plot(rows: list[dict], path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["rss_mb"] / 1024 for r in rows], label="after the step")
    if "peak_mb" in rows[0]:
        ax.plot(steps, [r["peak_mb"] / 1024 for r in rows], label="peak during the step", alpha=0.6)
    ax.legend(fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("resident memory (GiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
