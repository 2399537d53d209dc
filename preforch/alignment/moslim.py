"""`preforch train-policy --method moslim`: RL of an off-the-shelf chat model on MOSLIM's mapped reward.

Each RL prompt carries a `<levels ...>` tag (data/conditioning.py) naming a random non-empty subset of the
classifier's objectives, each at a random level, low levels included, so the policy must read the tag rather
than learn "be good". The reward model scores the *untagged* prompt; the class probabilities become one scalar
through the stored statistics (`mapped_reward`, MOSLIM Eq. 11). The trained policy folder gets a moslim.json
(objectives, level counts), which makes it a `moslim` preference policy (serving/policies/moslim.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from preforch.alignment.methods import PolicySetup, TrainingMethod
from preforch.alignment.rewards import completion_text, prompt_messages
from preforch.alignment.trl_utils import rl_prompts
from preforch.data.conditioning import MASKED, parse, render
from preforch.errors import ConfigError
from preforch.generation.moslim_spec import SPEC_FILE
from preforch.rewards.classifier_reward import ClassifierReward
from preforch.rewards.levels import expected_level, mapped_reward


def random_levels(n: int, num_levels: Sequence[int], seed: int) -> torch.Tensor:
    """n random requests [n, H] (long): each head named with probability 1/2 (rows naming none are redrawn) at a
    level drawn uniformly from 0 .. L_h - 1; MASKED where not named."""
    g = torch.Generator().manual_seed(seed)
    top = torch.tensor(num_levels)
    levels = (torch.rand(n, len(num_levels), generator=g) * top).long()
    named = torch.rand(n, len(num_levels), generator=g) < 0.5
    while not named.any(-1).all():
        empty = ~named.any(-1)
        named[empty] = torch.rand(int(empty.sum()), len(num_levels), generator=g) < 0.5
    return torch.where(named, levels, torch.full_like(levels, MASKED))


class MoslimReward:
    """TRL reward function: the mapped reward of each completion under its prompt's levels tag. Logs per head the
    mean probability of the requested level (named rows), the mean expected level and the masked fraction."""

    __name__ = "moslim_reward"

    def __init__(self, classifier, mapping: str = "probability"):
        self.classifier, self.mapping = classifier, mapping
        self.stats = classifier.stats  # read once: the stored reference statistics, never re-fitted

    def __call__(self, prompts: Sequence, completions: Sequence, log_metric: Callable[[str, float], None] | None = None,
                 **_) -> list[float]:
        heads, counts = self.classifier.objectives, self.classifier.num_levels
        parsed = [parse(prompt_messages(p), heads, counts) for p in prompts]
        targets = torch.stack([levels for _, levels, _ in parsed])  # [B, H]
        probs = self.classifier.probabilities([untagged for *_, untagged in parsed],
                                              [completion_text(c) for c in completions])  # [B, H, L]
        reward, _ = mapped_reward(probs, targets, self.stats, counts, self.mapping)
        if log_metric is not None:
            named = targets != MASKED
            p_requested = probs.gather(-1, targets.clamp_min(0)[..., None]).squeeze(-1)
            for h, head in enumerate(heads):
                if named[:, h].any():
                    log_metric(f"moslim/{head}/p_requested", p_requested[named[:, h], h].mean().item())
                log_metric(f"moslim/{head}/expected_level", expected_level(probs)[:, h].mean().item())
                log_metric(f"moslim/{head}/masked", 1 - named[:, h].float().mean().item())
            log_metric("moslim/reward", reward.mean().item())
        return reward.tolist()


class Moslim(TrainingMethod):
    """Random levels tags on the prompts, rewarded by the classifier's mapped reward (MOSLIM Eq. 11)."""

    not_in_rl_compare = ("its policy reads a levels tag, rl-compare evaluates untagged prompts; train it with "
                         "train-policy --method moslim and evaluate it with --method moslim")

    @classmethod
    def setup(cls, cfg, tokenizer) -> PolicySetup:
        """Prompts are fitted to the policy's `tokenizer` before tagging, so the tag is never cut; the policy folder
        gets moslim.json, which makes it a `moslim` preference policy."""
        from datasets import Dataset

        if not cfg.classifier:
            raise ConfigError("moslim needs --classifier DIR (a reward model trained with train-rm --levels ...)")
        classifier = ClassifierReward(cfg.classifier)
        heads, counts = classifier.objectives, classifier.num_levels
        prompts, _ = rl_prompts(cfg, tokenizer)
        levels = random_levels(len(prompts), counts, cfg.seed)
        tagged = [list(render(p, row, heads, "levels", counts)) for p, row in zip(prompts, levels)]
        spec = {"objectives": list(heads), "num_levels": list(counts), "mapping": cfg.mapping,
                "classifier": str(Path(cfg.classifier).resolve())}
        return PolicySetup(Dataset.from_dict({"prompt": tagged}), MoslimReward(classifier, cfg.mapping), [],
                           f"MOSLIM's prompt-stated objectives over the normalised scores of {cfg.classifier}",
                           {SPEC_FILE: spec})
