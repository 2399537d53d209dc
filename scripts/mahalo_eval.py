"""MAHALO's steering and guided-decoding measurements (docs/results.md, issue 13), on a train-mahalo policy whose
heads are helpful, harmless and arithmetic.

    .venv/bin/python scripts/mahalo_eval.py --policy runs/mahalo/policy --guide runs/quickstart/rewards \
        --judge runs/judge_rewards --output runs/mahalo_eval.json

- steering: over the simplex grid (K = 3, 2 divisions), greedy replies to held-out HH prompts judged by --judge
  (helpful, harmless), and exact-match accuracy on held-out arithmetic problems; per objective, the paired gain
  of its reward from its lowest to its highest weight with a 95% CI (`steering_monotonicity`);
- guided decoding: at uniform weights, unguided greedy vs step-level best-of-N guided by --guide (continuing the
  KV cache, and re-encoding), judged by --judge: combined judged reward and wall time.
The judge must be other reward models than the guide: say which in the results.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from preforch.alignment.best_of_n import SamplingConfig
from preforch.data.arithmetic import check, make_problems
from preforch.data.loaders import load_many
from preforch.data.weights import simplex_grid
from preforch.evaluation.metrics import mean_ci, steering_monotonicity
from preforch.io import atomic_write_json
from preforch.rewards.ensemble import RewardEnsemble
from preforch.serving.folder import load_preference_policy


def judged(judge: RewardEnsemble, prompts, replies: list[list[str]], objectives) -> np.ndarray:
    """Normalised judge rewards [P, len(objectives)] of one reply per prompt."""
    scores = judge.score(prompts, [r[0] for r in replies])
    return scores[:, [judge.objectives.index(o) for o in objectives]].numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True)
    ap.add_argument("--guide", required=True, help="reward ensemble that guides decoding")
    ap.add_argument("--judge", required=True, help="reward ensemble that judges (not the guide's models)")
    ap.add_argument("--prompts_per_source", type=int, default=16)
    ap.add_argument("--skip", type=int, default=200, help="HH train pairs skipped (those train-mahalo used)")
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--max_new_tokens", type=int, default=40)
    ap.add_argument("--arithmetic_tokens", type=int, default=64)
    ap.add_argument("--guided_prompts", type=int, default=8)
    ap.add_argument("--step_candidates", type=int, default=4)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    hh = ("helpful", "harmless")
    data = [load_many([f"hh-{o}:train"], args.skip + args.prompts_per_source)[args.skip:] for o in hh]
    prompts = [p for d in data for p in d.prompts]
    problems = make_problems(args.problems, seed=20_000)  # train-mahalo draws seed 0 (train) and 10000 (eval)
    judge = RewardEnsemble.load(args.judge)
    policy = load_preference_policy(args.policy, "mahalo")
    objectives = list(policy.objectives)
    greedy = SamplingConfig(1, args.max_new_tokens, 0.0, 1.0, 8)
    grid = simplex_grid(len(objectives), 2)
    rewards, correct, points = [], [], []
    for w in grid:
        wt = torch.tensor(w, dtype=torch.float32)
        started = time.perf_counter()
        rewards.append(judged(judge, prompts, policy.respond(prompts, wt.expand(len(prompts), -1), greedy), hh))
        replies = policy.respond([p.prompt for p in problems], wt.expand(len(problems), -1),
                                 SamplingConfig(1, args.arithmetic_tokens, 0.0, 1.0, 8))
        correct.append([float(check(r[0], p.answer)) for p, r in zip(problems, replies)])
        points.append({"weights": dict(zip(objectives, w.tolist())), "judged": rewards[-1].mean(0).tolist(),
                       "exact_match": float(np.mean(correct[-1])), "seconds": time.perf_counter() - started})
        print(points[-1], flush=True)
    hh_cols = [objectives.index(o) for o in hh]
    steering = steering_monotonicity(grid[:, hh_cols], np.stack(rewards), list(hh))
    steering.update(steering_monotonicity(grid[:, [objectives.index("arithmetic")]], np.array(correct)[..., None],
                                          ["arithmetic"]))

    uniform = torch.full((args.guided_prompts, len(objectives)), 1 / len(objectives))
    few = [p for d in data for p in d.prompts[:args.guided_prompts // 2]]
    runs = {"unguided": (policy, greedy)}
    for reuse in (True, False):
        runs[f"guided_N{args.step_candidates}_{'cache' if reuse else 'reencode'}"] = (load_preference_policy(
            args.policy, "mahalo", guide=args.guide, step_candidates=args.step_candidates, boundary="sentence",
            min_step_tokens=4, max_step_tokens=16, reuse_cache=reuse), SamplingConfig(1, args.max_new_tokens, 0.7, 1.0))
    guided = {}
    for name, (p, sampling) in runs.items():
        started = time.perf_counter()
        replies = p.respond(few, uniform, sampling)
        seconds = time.perf_counter() - started
        combined = judged(judge, few, replies, hh).mean(1)
        m, h = mean_ci(combined[:, None])
        guided[name] = {"judged_combined": float(m[0]), "ci95": float(h[0]), "seconds": seconds,
                        "per_prompt": combined.tolist(), "replies": [r[0] for r in replies]}
        print(name, {k: v for k, v in guided[name].items() if k not in ("per_prompt", "replies")}, flush=True)
    base = np.array(guided["unguided"]["per_prompt"])
    for name in guided:
        m, h = mean_ci((np.array(guided[name]["per_prompt"]) - base)[:, None])
        guided[name]["paired_gain_vs_unguided"] = {"mean": float(m[0]), "ci95": float(h[0])}
    atomic_write_json(args.output, {"policy": args.policy, "guide": args.guide, "judge": args.judge,
                                    "grid": points, "steering": steering, "guided": guided, "args": vars(args)})
    print({k: {"gain": v["gain"], "ci95": v["gain_ci95"]} for k, v in steering.items()})


if __name__ == "__main__":
    main()
