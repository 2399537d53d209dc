"""Throughput of `preforch serve`'s /v1/score and /get_reward, the remote reward model, over loopback.

    python benchmarks/score_throughput.py --run runs/mixed_intent [--pairs 512] [--batch_sizes 1 8 32 128]

Serves a reward ensemble and orchestrator in this process (uvicorn in a thread; the policy is never called), then
posts the chosen replies of held-out HH pairs in requests of each batch size, one request at a time, twice: with a
fixed preference and with none (the orchestrator weighs every prompt); then the same pairs as OpenRLHF posts them
to /get_reward (SmolLM2's chat template, read back into messages; orchestrator weights). Reports pairs/s and seconds
per request.
Writes benchmarks/results/score_throughput[_TAG].json; run with PREFORCH_BF16=0 --tag bf16_off for a CPU without
bf16 support.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx2 as httpx
from _common import save

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests.serving.test_http's `running` serves the app in a thread


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/mixed_intent", help="a build-benchmark or quickstart folder (rewards/, orchestrator/)")
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from preforch.data.loaders import load_many
    from preforch.models import resolve
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.serving.policies.plain import PlainPolicy, PlainSettings
    from preforch.serving.policies.policy import LoadOptions
    from preforch.serving.server.api_schema import Limits
    from preforch.serving.server.http import create_app
    from preforch.serving.server.prompt_text import TemplateReader
    from preforch.serving.server.served import Served
    from transformers import AutoTokenizer
    from tests.serving.test_http import running

    ensemble = RewardEnsemble.load(f"{args.run}/rewards")
    orchestrator = PreferenceOrchestrator.from_pretrained(f"{args.run}/orchestrator")
    tokenizer = AutoTokenizer.from_pretrained(resolve("smollm2"))
    served = Served(PlainPolicy(PlainSettings("smollm2", ensemble.objectives), LoadOptions()), ensemble, orchestrator,
                    reader=TemplateReader.from_tokenizer(tokenizer))
    data = load_many(["hh-helpful:test", "hh-harmless:test"], args.pairs // 2)[: args.pairs]
    items = [{"messages": list(p.prompt), "reply": p.chosen} for p in data]
    prompts = [tokenizer.apply_chat_template(list(p.prompt), tokenize=False, add_generation_prompt=True) for p in data]
    queries = [f"{prompt}{p.chosen}{tokenizer.eos_token}" for prompt, p in zip(prompts, data)]
    fixed = {o: 1 / len(ensemble.objectives) for o in ensemble.objectives}
    modes = {"fixed preference": lambda s, e: ("/v1/score", {"items": items[s:e], "preference": fixed}),
             "orchestrator": lambda s, e: ("/v1/score", {"items": items[s:e]}),
             "/get_reward, orchestrator": lambda s, e: ("/get_reward", {"query": queries[s:e], "prompts": prompts[s:e],
                                                                        "labels": [""] * len(queries[s:e])})}
    results = {}
    with running(create_app(served, Limits(max_score_items=max(args.batch_sizes)))) as (url, _):
        httpx.post(f"{url}/v1/score", json={"items": items[:2]}, timeout=600).raise_for_status()  # warm-up
        for mode, request in modes.items():
            for b in args.batch_sizes:
                t = time.perf_counter()
                for s in range(0, len(items), b):
                    route, body = request(s, s + b)
                    httpx.post(f"{url}{route}", json=body, timeout=600).raise_for_status()
                seconds = time.perf_counter() - t
                results[f"{mode}, batch {b}"] = {"pairs": len(items), "seconds": round(seconds, 2),
                                                 "pairs_per_s": round(len(items) / seconds, 1),
                                                 "s_per_request": round(seconds / -(-len(items) // b), 3)}
    save("score_throughput", {"run": args.run, "objectives": list(ensemble.objectives), "results": results}, args.tag)


if __name__ == "__main__":
    main()
