"""Evaluation throughput and the generation cache: one `preforch evaluate`, then the same evaluation
re-scored by a judge ensemble (a fresh instance, so no in-memory score cache), in one run.

    python benchmarks/evaluation_throughput.py --run runs/quickstart [--prompts_per_source 8]

Needs a finished quickstart run folder (policy, ensemble and orchestrator come from it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

from _common import save

from preforch.evaluation.config import EvaluateConfig
from preforch.evaluation.harness import resolve_from_run, run_evaluation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--prompts_per_source", type=int, default=8)
    ap.add_argument("--num_candidates", type=int, default=4)
    ap.add_argument("--max_new_tokens", type=int, default=48)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as out:
        base = replace(resolve_from_run(EvaluateConfig(from_run=args.run, reference_point=[-2.0, -2.0, -2.0])),
                       from_run=None, output_dir=out, grid_divisions=4, prompts_per_source=args.prompts_per_source,
                       num_candidates=args.num_candidates, max_new_tokens=args.max_new_tokens)
        t = time.perf_counter()
        first = run_evaluation(base)
        t_first = time.perf_counter() - t
        t = time.perf_counter()
        again = run_evaluation(replace(base, judge=f"{args.run}/rewards"))  # fresh ensemble: no score cache
        t_again = time.perf_counter() - t
    assert again["compute"]["cache_hit"], "second evaluation should reuse the cached generations"
    save("evaluation_throughput", {
        "run": args.run, "prompts": first["num_prompts"], "candidates_per_prompt": first["num_candidates"],
        "max_new_tokens": args.max_new_tokens, "preferences": len(first["grid"]),
        "first_eval_s": t_first, "generation_s": first["compute"]["generation_s"],
        "responses_scored_per_s": first["compute"]["responses_scored"] / first["compute"]["scoring_s"],
        "rescore_with_cache_s": t_again, "cache_speedup": t_first / t_again,
    })


if __name__ == "__main__":
    main()
