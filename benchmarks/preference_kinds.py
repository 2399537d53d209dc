"""Decoding speed of the soups and mod kinds against plain decoding of the same base model, in one run, and the
time soups takes to serve a new preference (one peft weighted-adapter merge).

    python benchmarks/preference_kinds.py [--base smollm2 --experts 2 --prompts 8 --max_new_tokens 32]

The experts are fresh LoRA adapters (all linear layers, peft's gaussian init: B = 0) on the base: speed does not
depend on what they learned, and with zero deltas every kind decodes the same replies, so the timings compare
equal work. Every kind decodes the same prompts greedily under one preference; tokens are counted in the replies.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import save

from preforch.alignment.best_of_n import SamplingConfig
from preforch.data.loaders import load_many
from preforch.serving.folder import load_preference_policy


def random_experts(base: str, folder: Path, k: int, r: int) -> tuple[str, ...]:
    """k fresh LoRA experts on `base`, saved as a train-experts folder; their objective names."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from preforch.alignment.expert_set import adapter_folder, write_expert_set

    objectives = tuple(f"objective{i}" for i in range(k))
    for i, objective in enumerate(objectives):
        torch.manual_seed(i)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                               LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights="gaussian"))
        model.save_pretrained(folder / adapter_folder(objective))
    write_expert_set(folder, base, objectives, "random")
    return objectives


def main() -> None:
    from preforch.models import resolve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--experts", type=int, default=2)
    ap.add_argument("--lora_r", type=int, default=16)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max_new_tokens", type=int, default=32)
    ap.add_argument("--merges", type=int, default=5, help="new preferences soups merges for, timed each")
    args = ap.parse_args()

    base = resolve(args.base)
    prompts = load_many(["hh-helpful:test"], args.prompts).prompts
    sampling = SamplingConfig(num_candidates=1, max_new_tokens=args.max_new_tokens, temperature=0.0, batch_size=args.prompts)
    with tempfile.TemporaryDirectory() as tmp:
        objectives = random_experts(base, Path(tmp), args.experts, args.lora_r)
        policies = {"plain": load_preference_policy(base, "plain", objectives=objectives),
                    "soups": load_preference_policy(tmp, "soups"), "mod": load_preference_policy(tmp, "mod")}
        weights = torch.full((len(prompts), args.experts), 1 / args.experts)
        speed = {}
        for kind, policy in policies.items():
            policy.respond(prompts[:1], weights[:1], sampling)  # loads the model (soups: merges for this w)
            t = time.perf_counter()
            replies = policy.respond(prompts, weights, sampling)
            seconds = time.perf_counter() - t
            tok = (policy.lm.model_and_tokenizer() if kind == "plain" else policy.model_and_tokenizer())[1]
            tokens = sum(len(tok(r[0], add_special_tokens=False).input_ids) + 1 for r in replies)  # + its end token
            speed[kind] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}
        merges = []
        for i in range(args.merges):  # preferences not served yet: each is one add_weighted_adapter
            w = torch.softmax(torch.randn(args.experts, generator=torch.Generator().manual_seed(i)), 0)
            t = time.perf_counter()
            policies["soups"].adapter(tuple(round(x, 4) for x in w.tolist()))
            merges.append(time.perf_counter() - t)
    save("preference_kinds", {
        "base": args.base, "experts": args.experts, "lora_r": args.lora_r, "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens, "dtype": str(policies["mod"].model_and_tokenizer()[0].dtype),
        "speed": speed, "relative_to_plain": {k: v["tokens_per_s"] / speed["plain"]["tokens_per_s"] for k, v in speed.items()},
        "soups_merge_s": {"median": statistics.median(merges), "max": max(merges), "merges": len(merges)},
    })


if __name__ == "__main__":
    main()
