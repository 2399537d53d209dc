"""Wall time of MAHALO's step-level guided decoding continuing the winner's KV cache against re-encoding the whole
context at every token, and against unguided decoding, on one MAHALO policy; the guided replies must agree.

    python benchmarks/guided_decoding.py --policy runs/mahalo/policy --guide runs/quickstart/rewards \
        [--prompts 2 --max_new_tokens 24 --step_candidates 3]

Both guided runs sample with one seed, so where the cache changes nothing they choose the same steps and write
the same replies: their times compare equal work.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import save

from preforch.data.loaders import load_many
from preforch.generation.sampling import SamplingConfig
from preforch.serving.policies.folder import load_preference_policy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True)
    ap.add_argument("--guide", required=True)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--max_new_tokens", type=int, default=24)
    ap.add_argument("--step_candidates", type=int, default=3)
    args = ap.parse_args()
    prompts = load_many(["hh-helpful:test"], args.prompts).prompts
    runs = {"unguided": (load_preference_policy(args.policy, "mahalo"), 0.0)}
    for reuse in (True, False):
        runs["cache" if reuse else "re-encode"] = (load_preference_policy(
            args.policy, "mahalo", guide=args.guide, step_candidates=args.step_candidates, boundary="sentence",
            min_step_tokens=4, max_step_tokens=12, reuse_cache=reuse), 0.7)
    out = {}
    for name, (policy, temperature) in runs.items():
        weights = torch.full((len(prompts), len(policy.objectives)), 1 / len(policy.objectives))
        policy.model_and_tokenizer()  # loading is not decoding
        started = time.perf_counter()
        replies = policy.respond(prompts, weights, SamplingConfig(1, args.max_new_tokens, temperature, 1.0, seed=0))
        out[name] = {"seconds": time.perf_counter() - started, "replies": [r[0] for r in replies]}
        print(name, out[name], flush=True)
    save("guided_decoding", {"args": vars(args), "runs": out,
                             "same_guided_replies": out["cache"]["replies"] == out["re-encode"]["replies"]})


if __name__ == "__main__":
    main()
