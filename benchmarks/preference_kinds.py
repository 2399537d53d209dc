"""Decoding cost of every built-in preference-policy kind against plain decoding of the same base model, in one
run, the time soups takes to serve a new preference (one peft weighted-adapter merge), and soups under a different
preference for every prompt: one batch with per-row LoRA scaling vs a merge and a decode per prompt.

    python benchmarks/preference_kinds.py [--base smollm2 --experts 2 --prompts 8 --max_new_tokens 32 --rounds 3]

Kinds: plain; best-of-n (N samples reranked; the ensemble is rules, so the time is the sampling's); wic (the base
with a Pro-WiC spec: its prompts carry the tag); soups and mod over fresh LoRA experts (all linear layers, peft's
gaussian init: B = 0), whose speed does not depend on what they learned. Every kind answers the same prompts
under one preference; best-of-n samples at temperature 1, the others decode greedily. Tokens are counted in
every sampled reply, so best-of-n's N candidates all count; `seconds_per_reply` is what a user waits per answer.
The kinds run in interleaved rounds (plain, best-of-n, ..., plain, ...) and each figure is the median round.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import save

from preforch.data.loaders import load_many
from preforch.generation.sampling import SamplingConfig
from preforch.serving.policies.folder import load_preference_policy


def random_experts(base: str, folder: Path, k: int, r: int) -> tuple[str, ...]:
    """k fresh LoRA experts on `base`, saved as a train-experts folder; their objective names."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from preforch.generation.expert_set import adapter_folder, write_expert_set

    objectives = tuple(f"objective{i}" for i in range(k))
    for i, objective in enumerate(objectives):
        torch.manual_seed(i)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                               LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights="gaussian"))
        model.save_pretrained(folder / adapter_folder(objective))
    write_expert_set(folder, base, objectives, "random")
    return objectives


def rule_ensemble(objectives: tuple[str, ...], folder: Path) -> str:
    """A saved ensemble of cheap rules named `objectives` (best-of-n's reranker; scoring costs ~nothing)."""
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import RuleReward

    rules = ("conciseness", "no_refusal")
    ensemble = RewardEnsemble([RuleReward(o, rules[i % len(rules)]) for i, o in enumerate(objectives)])
    ensemble.fit_normalization(load_many(["hh-helpful:train"], 64), progress=False)
    ensemble.save(folder)
    return str(folder)


def wic_folder(base: str, objectives: tuple[str, ...], folder: Path) -> str:
    """The base model's files linked into `folder` with a Pro-WiC wic.json: a wic policy that costs what a
    trained one does."""
    from preforch.generation.wic_spec import SPEC_FILE, WicSpec
    from preforch.io import atomic_write_json

    folder.mkdir(parents=True)
    for file in Path(base).iterdir():
        (folder / file.name).symlink_to(file.resolve())
    k = len(objectives)
    atomic_write_json(folder / SPEC_FILE, WicSpec("pro-wic", objectives, 1.0, (0.0,) * k, (1.0,) * k).to_dict())
    return str(folder)


def main() -> None:
    from preforch.models import resolve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--experts", type=int, default=2)
    ap.add_argument("--lora_r", type=int, default=16)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max_new_tokens", type=int, default=32)
    ap.add_argument("--merges", type=int, default=5, help="new preferences soups merges for, timed each")
    ap.add_argument("--num_candidates", type=int, default=4, help="best-of-n's N")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the median is reported")
    ap.add_argument("--tag", default="", help="results/preference_kinds_TAG.json, leaving the reference run's file")
    args = ap.parse_args()

    base = resolve(args.base)
    prompts = load_many(["hh-helpful:test"], args.prompts).prompts
    greedy = SamplingConfig(num_candidates=1, max_new_tokens=args.max_new_tokens, temperature=0.0, batch_size=args.prompts)
    sampled = SamplingConfig(num_candidates=args.num_candidates, max_new_tokens=args.max_new_tokens, temperature=1.0,
                             batch_size=args.prompts)
    with tempfile.TemporaryDirectory() as tmp:
        objectives = random_experts(base, Path(tmp), args.experts, args.lora_r)
        ensemble = rule_ensemble(objectives, Path(tmp) / "rules")
        policies = {"plain": (load_preference_policy(base, "plain", objectives=objectives), greedy),
                    "best-of-n": (load_preference_policy(base, "best-of-n", ensemble=ensemble,
                                                         num_candidates=args.num_candidates), sampled),
                    "wic": (load_preference_policy(wic_folder(base, objectives, Path(tmp) / "wic"), "wic"), greedy),
                    "soups": (load_preference_policy(tmp, "soups"), greedy), "mod": (load_preference_policy(tmp, "mod"), greedy)}
        weights = torch.full((len(prompts), args.experts), 1 / args.experts)
        for policy, sampling in policies.values():
            policy.respond(prompts[:1], weights[:1], sampling)  # loads the model (soups: merges for this w)
        rounds: dict[str, list[dict]] = {kind: [] for kind in policies}
        for _ in range(args.rounds):
            for kind, (policy, sampling) in policies.items():
                t = time.perf_counter()
                replies = policy.respond(prompts, weights, sampling)
                seconds = time.perf_counter() - t
                tok = policies["plain"][0].lm.model_and_tokenizer()[1]
                tokens = sum(len(tok(r, add_special_tokens=False).input_ids) + 1 for row in replies for r in row)  # + end token
                rounds[kind].append({"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
                                     "seconds_per_reply": seconds / len(prompts)})
        merges = []
        for i in range(args.merges):  # preferences not served yet: each is one add_weighted_adapter
            w = torch.softmax(torch.randn(args.experts, generator=torch.Generator().manual_seed(i)), 0)
            t = time.perf_counter()
            policies["soups"][0].adapter(tuple(round(x, 4) for x in w.tolist()))
            merges.append(time.perf_counter() - t)
        per_prompt = per_prompt_soups(policies["soups"][0], prompts, greedy, args.experts)
        dtype = str(policies["mod"][0].model_and_tokenizer()[0].dtype)
    speed = {kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for kind, rs in rounds.items()}
    plain = speed["plain"]
    save("preference_kinds", {
        "base": args.base, "experts": args.experts, "lora_r": args.lora_r, "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens, "num_candidates": args.num_candidates, "rounds": args.rounds, "dtype": dtype,
        "speed": speed, "rounds_raw": rounds,
        "tokens_per_s_relative_to_plain": {k: v["tokens_per_s"] / plain["tokens_per_s"] for k, v in speed.items()},
        "wait_per_reply_relative_to_plain": {k: v["seconds_per_reply"] / plain["seconds_per_reply"] for k, v in speed.items()},
        "soups_merge_s": {"median": statistics.median(merges), "max": max(merges), "merges": len(merges)},
        "soups_per_prompt_weights": per_prompt,
    }, args.tag)


def per_prompt_soups(soups, prompts, sampling: SamplingConfig, k: int) -> dict:
    """Soups under a different w for every prompt (the orchestrator's): one batch with per-row LoRA scaling vs a
    merge and a decode per prompt (what serving w by w costs). Wall times only: the experts' B = 0, so the replies
    say nothing (tests/serving/policies/test_soups_mod.py checks that both ways answer alike)."""
    from preforch.data.weights import random_simplex

    weights = random_simplex(len(prompts), k, seed=1)
    t = time.perf_counter()
    soups.respond(prompts, weights, sampling)
    one_batch = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(len(prompts)):
        soups.respond(prompts[i:i + 1], weights[i:i + 1], sampling)
    merged = time.perf_counter() - t
    return {"one_batch_s": one_batch, "merge_per_prompt_s": merged, "speedup": merged / one_batch,
            "prompts": len(prompts)}


if __name__ == "__main__":
    main()
