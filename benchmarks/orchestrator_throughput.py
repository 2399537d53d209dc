"""Orchestrator inference throughput (prompts/s), with and without the per-prompt cache.

    python benchmarks/orchestrator_throughput.py [--encoder minilm] [--num_prompts 512]

Cold: every prompt is encoded (cache cleared before each repeat). Warm: the same prompts again, served
from the cache (what Pro-MORLHF sees from the second epoch on, where each prompt recurs).
"""

from __future__ import annotations

import argparse

from _common import save, timed

from preforch.data.loaders import load_many
from preforch.models import fast_bf16
from preforch.orchestrator.model import PreferenceOrchestrator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--num_prompts", type=int, default=512)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    prompts = load_many(["hh-helpful:test", "hh-harmless:test"]).prompts[: args.num_prompts]
    orch = PreferenceOrchestrator.from_encoder(args.encoder, ["helpful", "harmless", "conciseness"])
    orch.predict(prompts[:8])  # warm-up (allocations, kernels)

    def cold():
        orch.clear_cache()
        orch.predict(prompts, args.batch_size)

    t_cold = timed(cold, args.repeats)
    t_warm = timed(lambda: orch.predict(prompts, args.batch_size), args.repeats)
    save("orchestrator_throughput", {
        "encoder": args.encoder, "num_prompts": len(prompts), "batch_size": args.batch_size, "bf16": fast_bf16(),
        "uncached_prompts_per_s": len(prompts) / t_cold, "cached_prompts_per_s": len(prompts) / t_warm,
        "cache_speedup": t_cold / t_warm,
    })


if __name__ == "__main__":
    main()
