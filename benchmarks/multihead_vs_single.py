"""Scoring K=3 objectives: one multi-head reward model vs three single-head models, same inputs, one run.

    python benchmarks/multihead_vs_single.py [--base_model minilm] [--num_pairs 256]

Both sides are the same backbone architecture and go through the same `HFRewardModel.score` path
(tokenisation included); the multi-head model needs one forward pass, the single-head set three.
"""

from __future__ import annotations

import argparse
import tempfile

from _common import save, timed

from preforch.data.loaders import load_many
from preforch.models import fast_bf16
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.multihead import MultiHeadRewardModel
from preforch.rewards.sources import HFRewardModel

OBJECTIVES = ["helpful", "harmless", "honest"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base_model", default="minilm")
    ap.add_argument("--num_pairs", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    data = load_many(["hh-helpful:test", "hh-harmless:test"])[: args.num_pairs]
    prompts, responses = data.prompts, [p.chosen for p in data]
    with tempfile.TemporaryDirectory() as tmp:
        MultiHeadRewardModel.from_encoder(args.base_model, OBJECTIVES).save_pretrained(f"{tmp}/multi")
        for o in OBJECTIVES:
            MultiHeadRewardModel.from_encoder(args.base_model, [o]).save_pretrained(f"{tmp}/{o}")
        multi = RewardEnsemble([HFRewardModel(f"{tmp}/multi")])
        single = RewardEnsemble([HFRewardModel(f"{tmp}/{o}") for o in OBJECTIVES])

        def run(ensemble):
            def call():
                ensemble._cache.clear()  # measure scoring, not the cache
                ensemble.score_raw(prompts, responses)
            return call

        run(multi)()  # warm-up
        t_multi = timed(run(multi), args.repeats)
        t_single = timed(run(single), args.repeats)
    save("multihead_vs_single", {
        "base_model": args.base_model, "objectives": OBJECTIVES, "num_pairs": len(prompts), "bf16": fast_bf16(),
        "multi_head_s": t_multi, "three_single_head_s": t_single, "single_over_multi_ratio": t_single / t_multi,
        "multi_head_pairs_per_s": len(prompts) / t_multi, "three_single_head_pairs_per_s": len(prompts) / t_single,
    })


if __name__ == "__main__":
    main()
