"""A bad reward source on purpose: one objective's scores corrupted, reproducibly, to test how the orchestrator
copes with a noisy or biased reward model (`preforch robustness`).

Every corruption acts in z units of the ensemble's stored normalisation (so a level means the same on any
objective) and is a fixed function of (prompt, reply, seed): the same reply gets the same corrupted score in any
batch, order or process, and training and evaluation see one corrupted reward model.

- noise:  z + level * e(x, y)                Gaussian noise of standard deviation `level`
- length: z + level * log2((1 + words) / 33)  a bias of `level` per doubling of the reply's word count (0 at 32)
- random: (1 - level) * z + level * e(x, y)   at level 1 the objective is a random function of the reply

e(x, y) ~ N(0, 1) is drawn from a hash of the seed and the pair (Box-Muller on two uniforms).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

import torch

from preforch.data.schema import Message, content_key
from preforch.errors import ConfigError
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.scores import Scores

CORRUPTIONS = ("noise", "length", "random")
REFERENCE_WORDS = 32  # the length bias is 0 at this many words


@dataclass(frozen=True)
class Corruption:
    objective: str
    kind: str
    level: float
    seed: int = 0

    def __post_init__(self):
        if self.kind not in CORRUPTIONS:
            raise ConfigError(f"corruption: expected one of {', '.join(CORRUPTIONS)}, got {self.kind!r}")
        if not math.isfinite(self.level) or self.level < 0 or (self.kind == "random" and self.level > 1):
            raise ConfigError(f"corruption {self.kind}: level {self.level} out of range "
                              f"({'[0, 1]' if self.kind == 'random' else '>= 0'})")


def pair_noise(keys: Sequence[str], seed: int) -> torch.Tensor:
    """A standard normal draw [B] per key, a fixed function of (seed, key)."""
    out = []
    for key in keys:
        digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
        u1 = (int.from_bytes(digest[:8], "big") + 1) / (2 ** 64 + 1)  # in (0, 1): log never sees 0
        u2 = int.from_bytes(digest[8:16], "big") / 2 ** 64
        out.append(math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2))
    return torch.tensor(out, dtype=torch.float32)


def corrupt_z(z: torch.Tensor, noise: torch.Tensor, words: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    """One objective's corrupted z-scores [B] from its z-scores, the pairs' `pair_noise` and replies' word counts
    (all [B]); the formulas of the module docstring."""
    if kind == "noise":
        return z + level * noise
    if kind == "length":
        return z + level * torch.log2((1 + words.float()) / (1 + REFERENCE_WORDS))
    return (1 - level) * z + level * noise


class CorruptedEnsemble(RewardEnsemble):
    """`base` with one objective's scores corrupted (`Corruption`); it shares base's sources, normalisation and
    score cache (clean raw scores, so several corruptions of one stack score each reply once). The corruption is
    applied to raw scores in the objective's normalised units, so `score`, `score_raw` and everything built on them
    see it. An objective the scores say does not apply stays not applicable."""

    def __init__(self, base: RewardEnsemble, corruption: Corruption):
        super().__init__(base.sources, base.normalizer, base.batch_size)
        if corruption.objective not in self.objectives:
            raise ConfigError(f"corruption: objective {corruption.objective!r} is not in the ensemble "
                              f"({', '.join(self.objectives)})")
        if self.normalizer is None:
            raise ConfigError("corruption: the ensemble has no normalisation statistics (its z units)")
        self._cache = base._cache
        self.corruption = corruption
        self.column = self.objectives.index(corruption.objective)

    def score_raw(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], progress: bool = False,
                  columns: dict[str, Sequence] | None = None) -> Scores:
        raw = super().score_raw(prompts, responses, progress, columns)
        k, c = self.column, self.corruption
        if c.level == 0 or not len(responses):
            return raw
        mean, std = float(self.normalizer.mean[k]), float(self.normalizer.std[k])
        z = (raw.values[:, k] - mean) / std
        noise = pair_noise([content_key(p, r) for p, r in zip(prompts, responses)], c.seed)
        words = torch.tensor([len(r.split()) for r in responses])
        values = raw.values.clone()
        values[:, k] = corrupt_z(z, noise, words, c.kind, c.level) * std + mean
        return Scores(values, raw.applies)
