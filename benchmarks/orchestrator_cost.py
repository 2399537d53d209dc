"""What the orchestrator costs beside the models it sits with: parameters, and seconds per prompt at batch 1 and 64
for the orchestrator, one reward-ensemble forward and one policy sample (PRO's reviewers asked for this).

    python benchmarks/orchestrator_cost.py --run runs/mixed_intent_independent [--policy smollm2] [--tag bf16_off]

Every timing is the best of --repeats, caches cleared before each; the same held-out HH prompts (and their chosen
replies, for the reward models) throughout. A fine-tuned encoder has the architecture of the frozen one, so it costs
the same per prompt; only its training differs.
"""

from __future__ import annotations

import argparse

import torch
from _common import save, timed

from preforch.data.loaders import load_many
from preforch.generation.sampling import SamplingConfig, sample_candidates
from preforch.models import load_policy, resolve
from preforch.orchestrator.model import PreferenceOrchestrator
from preforch.rewards.ensemble import RewardEnsemble


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/mixed_intent_independent", help="a build-benchmark or quickstart folder")
    ap.add_argument("--policy", default="smollm2")
    ap.add_argument("--max_new_tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    orchestrator = PreferenceOrchestrator.from_pretrained(f"{args.run}/orchestrator", device="cpu")
    ensemble = RewardEnsemble.load(f"{args.run}/rewards", device="cpu")
    model, tokenizer = load_policy(resolve(args.policy), device="cpu")
    data = load_many(["hh-helpful:test", "hh-harmless:test"], 32)
    prompts, replies = list(data.prompts[:64]), [p.chosen for p in data][:64]

    def orchestrate(n):
        orchestrator.clear_cache(features=True)
        orchestrator.predict(prompts[:n], batch_size=n)

    def score(n):
        ensemble.clear_cache()
        ensemble.score_raw(prompts[:n], replies[:n])

    def sample(n):
        greedy = SamplingConfig(1, args.max_new_tokens, 0.0, 1.0, n, 0)
        sample_candidates(model, tokenizer, prompts[:n], greedy, progress=False)

    per_prompt = {}
    for name, fn, sizes in (("orchestrator weights", orchestrate, (1, 64)), ("reward ensemble scores", score, (1, 64)),
                            (f"policy sample ({args.max_new_tokens} tokens, greedy)", sample, (1, 8))):
        fn(2)  # warm-up
        per_prompt[name] = {f"batch {n}": round(timed(lambda: fn(n), args.repeats) / n, 4) for n in sizes}
        print(name, per_prompt[name], flush=True)
    reward_models = [s.model for s in ensemble.sources if hasattr(s, "model")]
    save("orchestrator_cost", {
        "run": args.run, "policy": args.policy,
        "parameters": {"orchestrator": parameters(orchestrator), "orchestrator head": parameters(orchestrator.head),
                       "reward models": sum(parameters(m) for m in reward_models), "policy": parameters(model)},
        "seconds_per_prompt": per_prompt}, args.tag)


if __name__ == "__main__":
    main()
