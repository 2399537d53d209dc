"""MAHALO's steering, baseline and guided-decoding measurements (docs/results.md, MAHALO), on a train-mahalo policy
whose heads are helpful, harmless and arithmetic.

    .venv/bin/python scripts/mahalo_eval.py --policy runs/mahalo/policy --guide runs/quickstart/rewards \
        --judge runs/judge/rewards --baselines start=smollm2 pooled=runs/mahalo_pooled/policy \
        helpful=runs/mahalo_helpful/policy harmless=runs/mahalo_harmless/policy \
        arithmetic=runs/mahalo_arithmetic/policy --output runs/mahalo_eval.json

- steering: over the simplex grid (K = 3, 2 divisions), greedy replies to held-out HH prompts judged by --judge
  (helpful, harmless), and exact-match accuracy on held-out arithmetic problems; per objective, the paired gain
  of its reward from its lowest to its highest weight with a 95% CI (`steering_monotonicity`);
- baselines (train-mahalo folders, or a plain model such as the starting one), greedy on the same prompts and
  problems; a baseline named after an objective is DPO on that objective alone: MAHALO asked for only that
  objective minus it, paired on prompts, is the judged interference; from the runs' records, the same in
  held-out implicit-reward accuracy (`interference`);
- guided decoding: at uniform weights, unguided greedy vs step-level best-of-N guided by --guide (continuing the
  KV cache, and re-encoding), judged by --judge: combined judged reward and wall time.
The judge must be other reward models than the guide: say which in the results.

With --matrix_pairs N it only re-measures the head x objective matrix (`evaluate_heads`) on the first N held-out
pairs per objective of the run's own --eval_data, or of --matrix_data (more than the run held out, for tighter CIs),
and each head's paired specialization, and skips the rest. With --strata FILE it adds the length strata
(`with_length_strata`: accuracy where the chosen reply is longer, where it is shorter, and their mean) to a matrix
measured before, FILE being the run's mahalo_run.json or a --matrix_pairs output, on the pairs it was measured on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from preforch.alignment.mahalo import RUN_FILE, evaluate_heads, heldout_of_run, with_length_strata
from preforch.data.arithmetic import check, make_problems
from preforch.data.loaders import load_many
from preforch.data.weights import simplex_grid
from preforch.evaluation.metrics import head_specialization, interference, mean_ci, paired_gap, steering_monotonicity
from preforch.generation.sampling import SamplingConfig
from preforch.io import atomic_write_json
from preforch.rewards.ensemble import RewardEnsemble
from preforch.serving.policies.folder import load_preference_policy

HH = ("helpful", "harmless")
# step-level best-of-N as guided here: sentence steps of 4-16 tokens
GUIDED = dict(boundary="sentence", min_step_tokens=4, max_step_tokens=16)


def judged(judge: RewardEnsemble, prompts, replies: list[list[str]], objectives) -> np.ndarray:
    """Normalised judge rewards [P, len(objectives)] of one reply per prompt."""
    scores = judge.score(prompts, [r[0] for r in replies])
    return scores[:, [judge.objectives.index(o) for o in objectives]].numpy()


def answers(policy, prompts, problems, w: torch.Tensor, judge, args) -> tuple[np.ndarray, list[float]]:
    """Greedy replies under weights w [K]: judged (helpful, harmless) rewards [P, 2] and exact match [Q]."""
    greedy = SamplingConfig(1, args.max_new_tokens, 0.0, 1.0, 8)
    rewards = judged(judge, prompts, policy.respond(prompts, w.expand(len(prompts), -1), greedy), HH)
    replies = policy.respond([p.prompt for p in problems], w.expand(len(problems), -1),
                             SamplingConfig(1, args.arithmetic_tokens, 0.0, 1.0, 8))
    return rewards, [float(check(r[0], p.answer)) for p, r in zip(problems, replies)]


def strata(args) -> None:
    """--strata: the stored matrix's cells plus their length strata, printed and written to --output."""
    from transformers import AutoTokenizer

    record = json.loads(Path(args.strata).read_text())
    specs, cap = ((None, record["config"]["max_eval_pairs"]) if "config" in record
                  else (record["args"]["matrix_data"], record["args"]["matrix_pairs"]))
    cfg, heldout = heldout_of_run(args.policy, specs, cap)
    matrix = with_length_strata(record["heldout_accuracy"], heldout, AutoTokenizer.from_pretrained(args.policy), cfg)
    atomic_write_json(args.output, {"policy": args.policy, "strata_of": args.strata, "heldout_accuracy": matrix})
    for key in ("accuracy", "length_balanced_accuracy", "accuracy_chosen_longer", "accuracy_chosen_shorter"):
        print(key, {head: {o: None if c[key] is None else round(c[key], 3) for o, c in row.items()}
                    for head, row in matrix.items()})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True)
    ap.add_argument("--guide", help="reward ensemble that guides decoding")
    ap.add_argument("--judge", help="reward ensemble that judges (not the guide's models)")
    ap.add_argument("--prompts_per_source", type=int, default=24)
    ap.add_argument("--skip", type=int, default=200, help="HH train pairs skipped (those train-mahalo used)")
    ap.add_argument("--problems", type=int, default=48)
    ap.add_argument("--max_new_tokens", type=int, default=40)
    ap.add_argument("--arithmetic_tokens", type=int, default=48)
    ap.add_argument("--guided_prompts", type=int, default=8, help="0 skips guided decoding on HH prompts")
    ap.add_argument("--step_candidates", type=int, default=4)
    ap.add_argument("--reencode_prompts", type=int, default=2, help="prompts timed continuing the cache vs re-encoding")
    ap.add_argument("--arithmetic_level", default="one-step", help="as the policy's train-mahalo run")
    ap.add_argument("--baselines", nargs="*", default=[], metavar="NAME=FOLDER",
                    help="train-mahalo folders or plain models; NAME an objective: DPO on it alone")
    ap.add_argument("--value_head", help="train-value-head folder: arithmetic problems guided by it vs by rollouts")
    ap.add_argument("--guided_problems", type=int, default=24)
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--rollout_problems", type=int, default=8, help="problems the rollout-valued arm answers")
    ap.add_argument("--matrix_pairs", type=int, default=0, help="only the head x objective matrix, on N pairs each")
    ap.add_argument("--matrix_data", nargs="*", metavar="SPEC",
                    help="with --matrix_pairs: held-out pairs, one spec per objective of the run (default: the run's own)")
    ap.add_argument("--strata", metavar="FILE", help="add length strata to the matrix in FILE (mahalo_run.json or a "
                    "--matrix_pairs output of --policy), and skip the rest")
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    if args.strata:
        strata(args)
        return
    if args.matrix_pairs:
        matrix = evaluate_heads(args.policy, args.matrix_data, args.matrix_pairs)
        matrix["head_specialization"] = head_specialization(matrix["heldout_accuracy"])
        atomic_write_json(args.output, {**matrix, "args": vars(args)})
        print({head: {objective: round(cell["accuracy"], 3) for objective, cell in row.items()}
               for head, row in matrix["heldout_accuracy"].items()})
        print("own head minus other heads", matrix["head_specialization"])
        return
    if not (args.guide and args.judge):
        ap.error("--guide and --judge are needed (all but --matrix_pairs)")

    data = [load_many([f"hh-{o}:train"], args.skip + args.prompts_per_source)[args.skip:] for o in HH]
    prompts = [p for d in data for p in d.prompts]
    # train-mahalo draws seed 0 (train) and 10000 (eval)
    problems = make_problems(args.problems, seed=20_000, level=args.arithmetic_level)
    judge = RewardEnsemble.load(args.judge)
    policy = load_preference_policy(args.policy, "mahalo")
    objectives = list(policy.objectives)
    grid = simplex_grid(len(objectives), 2)
    rewards, correct, points = [], [], []
    for w in grid:
        started = time.perf_counter()
        r, c = answers(policy, prompts, problems, torch.tensor(w, dtype=torch.float32), judge, args)
        rewards.append(r)
        correct.append(c)
        points.append({"weights": dict(zip(objectives, w.tolist())), "judged": r.mean(0).tolist(),
                       "exact_match": float(np.mean(c)), "seconds": time.perf_counter() - started})
        print(points[-1], flush=True)
    hh_cols = [objectives.index(o) for o in HH]
    steering = steering_monotonicity(grid[:, hh_cols], np.stack(rewards), list(HH))
    steering.update(steering_monotonicity(grid[:, [objectives.index("arithmetic")]], np.array(correct)[..., None],
                                          ["arithmetic"]))
    baselines = evaluate_baselines(args, policy, grid, rewards, correct, prompts, problems, judge)

    guided = (guided_decoding(args, policy, [p for d in data for p in d.prompts[:args.guided_prompts // 2]], judge)
              if args.guided_prompts else {})
    if args.value_head:
        guided["arithmetic"] = guided_arithmetic(args, problems[:args.guided_problems])
    atomic_write_json(args.output, {"policy": args.policy, "guide": args.guide, "judge": args.judge,
                                    "grid": points, "steering": steering, "baselines": baselines, "guided": guided,
                                    "args": vars(args)})
    print({k: {"gain": v["gain"], "ci95": v["gain_ci95"]} for k, v in steering.items()})


def evaluate_baselines(args, policy, grid, rewards, correct, prompts, problems, judge) -> dict:
    """MAHALO at uniform weights and each baseline: judged rewards and exact match (95% CIs); for a baseline named
    after an objective, MAHALO asked for only that objective minus it (paired), and the implicit-reward
    `interference` from both runs' records."""
    objectives, out, alone = list(policy.objectives), {}, {}
    for name, folder in [("mahalo_uniform", args.policy)] + [tuple(b.split("=", 1)) for b in args.baselines]:
        is_mahalo = (Path(folder) / "mahalo.json").is_file()
        served = policy if name == "mahalo_uniform" else load_preference_policy(
            folder, "mahalo" if is_mahalo else "plain", objectives=None if is_mahalo else ["any"])
        k = len(served.objectives)
        r, c = answers(served, prompts, problems, torch.full((k,), 1 / k), judge, args)
        if name in objectives and (Path(folder).parent / RUN_FILE).is_file():
            alone[name] = json.loads((Path(folder).parent / RUN_FILE).read_text())
        m, h = mean_ci(r)
        out[name] = {"judged": dict(zip(HH, m.tolist())), "judged_ci95": dict(zip(HH, h.tolist())),
                     "exact_match": float(np.mean(c)), "exact_match_ci95": float(mean_ci(np.array(c)[:, None])[1][0])}
        if name in objectives:
            k = objectives.index(name)
            one_hot = int(np.argmax(grid[:, k]))
            ours, theirs = ((rewards[one_hot][:, HH.index(name)], r[:, HH.index(name)]) if name in HH
                            else (correct[one_hot], c))
            out[name]["mahalo_minus_alone"] = paired_gap(ours, theirs)
        print(name, out[name], flush=True)
    run = Path(args.policy).parent / RUN_FILE
    if run.is_file():
        record = json.loads(run.read_text())
        out["head_specialization"] = head_specialization(record["heldout_accuracy"])
        print("own head minus other heads, held-out implicit-reward accuracy", out["head_specialization"], flush=True)
        if alone:
            out["implicit_interference"] = interference(record, alone)
            print("implicit-reward interference", out["implicit_interference"], flush=True)
    return out


def guided_decoding(args, policy, few, judge) -> dict:
    """At uniform weights: unguided greedy vs guided step-level best-of-N (continuing the KV cache) on `few` prompts,
    judged (combined reward, paired gain); then on the first --reencode_prompts of them, guided decoding continuing
    the cache vs re-encoding the context at every token (same seed): wall time and whether the replies agree."""
    uniform = torch.full((len(few), len(policy.objectives)), 1 / len(policy.objectives))
    sampled = SamplingConfig(1, args.max_new_tokens, 0.7, 1.0)
    guide = lambda reuse: load_preference_policy(args.policy, "mahalo", guide=args.guide, step_candidates=args.step_candidates,
                                                 reuse_cache=reuse, **GUIDED)
    out = {}
    for name, served, sampling in (("unguided", policy, SamplingConfig(1, args.max_new_tokens, 0.0, 1.0, 8)),
                                   (f"guided_N{args.step_candidates}", guide(True), sampled)):
        started = time.perf_counter()
        replies = served.respond(few, uniform, sampling)
        seconds = time.perf_counter() - started
        combined = judged(judge, few, replies, HH).mean(1)
        m, h = mean_ci(combined[:, None])
        out[name] = {"judged_combined": float(m[0]), "ci95": float(h[0]), "seconds": seconds,
                     "per_prompt": combined.tolist(), "replies": [r[0] for r in replies]}
        print(name, {k: v for k, v in out[name].items() if k not in ("per_prompt", "replies")}, flush=True)
    out[f"guided_N{args.step_candidates}"]["paired_gain_vs_unguided"] = paired_gap(
        out[f"guided_N{args.step_candidates}"]["per_prompt"], out["unguided"]["per_prompt"])
    timing, replies = {}, {}
    for name, reuse in (("cache", True), ("reencode", False)):
        started = time.perf_counter()
        replies[name] = guide(reuse).respond(few[:args.reencode_prompts], uniform[:args.reencode_prompts], sampled)
        timing[f"{name}_seconds"] = time.perf_counter() - started
    out["cache_vs_reencode"] = {**timing, "prompts": args.reencode_prompts, "same_replies": replies["cache"] == replies["reencode"],
                                "slowdown": timing["reencode_seconds"] / timing["cache_seconds"]}
    print("cache vs re-encode", out["cache_vs_reencode"], flush=True)
    return out


def guided_arithmetic(args, problems) -> dict:
    """At weights (0, 0, 1) on arithmetic problems: step-level best-of-N with the arithmetic column valued by the
    value head (the PRM), by Monte Carlo rollouts (its baseline; the slowest, so on the first --rollout_problems),
    and by nothing (every candidate ties, so the first is kept: plain sampling at the same temperature): exact
    match with CIs, paired gains over the sampled arm on the same problems, wall time per problem."""
    out = {}
    settings = dict(guide=args.guide, step_candidates=args.step_candidates, **GUIDED)
    for name, extra, n in (("sampled", {}, len(problems)), ("value_head", {"value_head": args.value_head}, len(problems)),
                           (f"rollouts_{args.rollouts}", {"rollouts": args.rollouts, "rollout_tokens": 24},
                            args.rollout_problems)):
        policy = load_preference_policy(args.policy, "mahalo", **settings, **extra)
        started = time.perf_counter()
        replies = policy.respond([p.prompt for p in problems[:n]], torch.tensor([[0.0, 0.0, 1.0]]).expand(n, -1),
                                 SamplingConfig(1, args.arithmetic_tokens, 0.7, 1.0))
        correct = [float(check(r[0], p.answer)) for p, r in zip(problems, replies)]
        out[name] = {"exact_match": float(np.mean(correct)), "ci95": float(mean_ci(np.array(correct)[:, None])[1][0]),
                     "problems": n, "seconds_per_problem": (time.perf_counter() - started) / n, "correct": correct,
                     "paired_gain_vs_sampled": paired_gap(correct, out["sampled"]["correct"][:n]) if out else None}
        print("arithmetic", name, {k: v for k, v in out[name].items() if k != "correct"}, flush=True)
    return out


if __name__ == "__main__":
    main()
