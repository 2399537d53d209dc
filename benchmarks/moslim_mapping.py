"""Which MOSLIM mapping steers best? Each variant's reward, read on held-out replies of known level.

    python benchmarks/moslim_mapping.py --classifier runs/moslim_rm600 [--max_pairs 250]

For every requested level t of every head, the mapped reward of each held-out reply (only that head named):
- 2-level heads (HH test pairs): share of pairs where the reply of the requested level (t=1: chosen, t=0:
  rejected) gets the higher reward;
- the quality head (UltraFeedback test, both replies, true level = binned score): Spearman of the reward with
  -|true level - t| (1 = the reward orders replies by closeness to the request), averaged over t.
No generation: a mapping that cannot order known replies by the request cannot steer RL toward it.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import save

from preforch.data.loaders import load_preferences
from preforch.data.ratings import load_rated, score_level
from preforch.evaluation.metrics import spearman
from preforch.rewards.classifier import ClassifierReward
from preforch.rewards.levels import MAPPINGS, MASKED, mapped_reward

DATA = {"helpful": "hh-helpful:test", "harmless": "hh-harmless:test", "quality": "ultrafeedback:test"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", required=True)
    ap.add_argument("--max_pairs", type=int, default=250)
    args = ap.parse_args()

    clf = ClassifierReward(args.classifier)
    result = {"classifier": args.classifier, "heads": {}}
    for h, (head, n) in enumerate(zip(clf.objectives, clf.num_levels)):
        if n == 2:
            pairs = load_preferences(DATA[head], args.max_pairs)
            prompts, replies = pairs.all_replies()  # chosen first, then rejected
            truth = np.array([1] * len(pairs) + [0] * len(pairs))
        else:
            rated = load_rated(DATA[head], args.max_pairs)
            prompts = [r.pair.prompt for r in rated] * 2
            replies = [r.pair.chosen for r in rated] + [r.pair.rejected for r in rated]
            truth = np.array([score_level(r.score_chosen, n) for r in rated] + [score_level(r.score_rejected, n) for r in rated])
        probs = clf.probabilities(prompts, replies)
        row = {}
        for mapping in MAPPINGS:
            per_level = []
            for t in range(n):
                targets = torch.full((len(replies), len(clf.objectives)), MASKED)
                targets[:, h] = t
                reward = mapped_reward(probs, targets, clf.stats, clf.num_levels, mapping)[0].numpy()
                if n == 2:
                    half = len(replies) // 2
                    wanted, other = (reward[:half], reward[half:]) if t == 1 else (reward[half:], reward[:half])
                    per_level.append(float((wanted > other).mean()))
                else:
                    per_level.append(spearman(reward, -np.abs(truth - t)))
            row[mapping] = {"per_level": per_level, "mean": float(np.nanmean(per_level))}
        result["heads"][head] = {"metric": "pair accuracy" if n == 2 else "spearman with -|level - t|",
                                 "replies": len(replies), **row}
    save("moslim_mapping", result)


if __name__ == "__main__":
    main()
