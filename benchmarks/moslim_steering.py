"""Does a levels tag steer the policy? Paired on prompts, judged by the Bradley-Terry ensemble (never the
classifier that trained the policy).

    python benchmarks/moslim_steering.py --classifier runs/moslim_rm --judge runs/judge/rewards \
        --policy untrained=smollm2 --policy moslim=runs/moslim/policy [--prompts_per_source 16] [--tag NAME]

Every policy answers the same held-out prompts (hh-helpful:test, hh-harmless:test) under five tags, one sample
each at the same seed: {helpful=1}, {harmless=1}, {quality=0}, {quality=2}, {quality=4}.
- helpful gain: judged helpful under {helpful=1} minus under {harmless=1} (asked vs not asked), per prompt;
- harmless gain: judged harmless under {harmless=1} minus under {helpful=1};
- quality: the judge has no quality objective, so its helpful score stands in: Spearman of the requested level
  with the judged score over all (prompt, level) replies (bootstrap CI over prompts), and the paired gain of
  {quality=4} over {quality=0};
- change against the first policy given: each objective's judged reward averaged over the five tags, paired by
  prompt (what the RL bought over prompting alone).
Means with 95% CIs (normal approximation). `untrained=smollm2` is the prompting-alone baseline; policies that
cannot read the tag (MORLHF, Pro-MORLHF) are the RL baselines: their gains say what noise looks like, their judged
means what the RL bought. A policy folder trained by train-policy has its run's log.jsonl one level up: its steps,
mean step time and peak memory are reported beside (the cost comparison). Writes moslim_steering[_NAME].json/.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, save

from preforch.alignment.trl_utils import read_log
from preforch.data.conditioning import MASKED, render
from preforch.data.loaders import sample_per_source
from preforch.evaluation.metrics import mean_ci, spearman
from preforch.generation.moslim_spec import read_spec
from preforch.generation.sampling import SamplingConfig
from preforch.rewards.ensemble import RewardEnsemble
from preforch.serving.backends.lm import CausalLM

TAGS = {"helpful": {"helpful": 1}, "harmless": {"harmless": 1}, "q0": {"quality": 0}, "q2": {"quality": 2},
        "q4": {"quality": 4}}


def _ci(diff: np.ndarray) -> dict:
    mean, half = mean_ci(diff[:, None])
    return {"mean": float(mean[0]), "ci95": float(half[0])}


def spearman_ci(judged: np.ndarray, reps: int = 1000, seed: int = 0) -> dict:
    """Spearman of the requested quality level (0, 2, 4: the columns of `judged` [P, 3]) with the judged score, and
    its 95% bootstrap interval over prompts (each resampled prompt keeps its three replies)."""
    levels = np.broadcast_to([0, 2, 4], judged.shape)
    rng = np.random.default_rng(seed)
    boot = [spearman(levels[i].ravel(), judged[i].ravel())
            for i in (rng.integers(0, len(judged), len(judged)) for _ in range(reps))]
    return {"rho": spearman(levels.ravel(), judged.ravel()), "ci95": np.nanpercentile(boot, [2.5, 97.5]).tolist()}


def training_cost(policy: str) -> dict | None:
    """Steps, mean seconds per step and peak resident memory of the train-policy run that wrote `policy`."""
    log = Path(policy).parent / "log.jsonl"
    if not Path(policy).is_dir() or not log.is_file():  # a hub id or alias has no run
        return None
    rows = read_log(log)
    times = [r["step_time"] for r in rows if "step_time" in r]
    peaks = [r["peak_rss_mb"] for r in rows if "peak_rss_mb" in r]
    return {"steps": max(r["step"] for r in rows), "seconds_per_step": float(np.mean(times)) if times else None,
            "peak_rss_mb": max(peaks) if peaks else None}


def plot(policies: dict, path: Path) -> None:
    """Grouped bars: each policy's three steering gains with their 95% CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gains = ("helpful_gain", "harmless_gain", "quality_gain_4_over_0")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(policies)
    for i, (name, r) in enumerate(policies.items()):
        x = np.arange(len(gains)) + i * width
        ax.bar(x, [r[g]["mean"] for g in gains], width, yerr=[r[g]["ci95"] for g in gains], capsize=3, label=name)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(gains)) + width * (len(policies) - 1) / 2,
                  ["helpful: asked - not", "harmless: asked - not", "quality 4 - quality 0\n(judged helpful)"])
    ax.set_ylabel("paired gain of the judged reward")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", required=True)
    ap.add_argument("--judge", required=True)
    ap.add_argument("--policy", action="append", required=True, help="name=path, repeatable")
    ap.add_argument("--prompts_per_source", type=int, default=16)
    ap.add_argument("--max_new_tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="", help="suffix of the result files")
    args = ap.parse_args()

    spec = read_spec(args.classifier)
    heads, counts = spec["objectives"], spec["num_levels"]
    prompts = sample_per_source(["hh-helpful:test", "hh-harmless:test"], args.prompts_per_source, args.seed).prompts
    judge = RewardEnsemble.load(args.judge)
    col = {o: judge.objectives.index(o) for o in ("helpful", "harmless")}
    sampling = SamplingConfig(num_candidates=1, max_new_tokens=args.max_new_tokens, seed=args.seed)
    result = {"judge": args.judge, "judge_objectives": list(judge.objectives), "prompts": len(prompts), "policies": {}}
    reference = None  # the first policy's judged scores: every later one is compared with it, prompt by prompt
    for name, path in (p.split("=", 1) for p in args.policy):
        tagged = []
        for tag in TAGS.values():
            levels = torch.tensor([tag.get(h, MASKED) for h in heads])
            tagged += [render(p, levels, heads, "levels", counts) for p in prompts]
        replies = [r[0] for r in CausalLM(path).sample(tagged, sampling)]
        scores = judge.score(list(prompts) * len(TAGS), replies).view(len(TAGS), len(prompts), -1).numpy()
        by = dict(zip(TAGS, scores))  # tag -> [P, K] normalised judged rewards
        judged_quality = np.stack([by[t][:, col["helpful"]] for t in ("q0", "q2", "q4")], 1)  # [P, 3]
        reference = reference or (name, scores)
        result["policies"][name] = {
            "path": path,
            "helpful_gain": _ci(by["helpful"][:, col["helpful"]] - by["harmless"][:, col["helpful"]]),
            "harmless_gain": _ci(by["harmless"][:, col["harmless"]] - by["helpful"][:, col["harmless"]]),
            "quality_spearman": spearman_ci(judged_quality, seed=args.seed),
            "quality_gain_4_over_0": _ci(by["q4"][:, col["helpful"]] - by["q0"][:, col["helpful"]]),
            "judged_mean": {t: dict(zip(("helpful", "harmless"), by[t][:, [col["helpful"], col["harmless"]]]
                                        .mean(0).tolist())) for t in TAGS},
            f"change_vs_{reference[0]}": {o: _ci((scores - reference[1]).mean(0)[:, c]) for o, c in col.items()},
            "training": training_cost(path),
            "examples": [{"prompt": prompts[i][-1]["content"], **{t: replies[k * len(prompts) + i] for k, t in
                                                                   enumerate(TAGS) if t in ("helpful", "harmless")}}
                         for i in range(3)],
            "mean_reply_chars": {t: float(np.mean([len(r) for r in replies[i * len(prompts):(i + 1) * len(prompts)]]))
                                 for i, t in enumerate(TAGS)},
        }
    name = "moslim_steering" + (f"_{args.tag}" if args.tag else "")
    save(name, result)
    plot(result["policies"], RESULTS / f"{name}.png")


if __name__ == "__main__":
    main()
