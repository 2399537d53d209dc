"""Kind `best-of-n`: N samples from a base policy, reranked by w . r~ under a reward ensemble (paper Eq. 4, 9), summed
over the objectives that apply to each candidate with their weights renormalised (`combined_reward`), so an objective
that does not apply neither helps nor hurts a candidate.

The base is any policy folder (a plain model by default; a train-wic folder makes it WiC with reranking on
top). Over a plain base the N candidates serve every weighting, so a grid of preferences costs one sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from preforch.data.schema import Message
from preforch.errors import ConfigError
from preforch.generation.combined_reward import combined_reward
from preforch.generation.sampling import SamplingConfig
from preforch.serving.policies.policy import LoadOptions, PreferencePolicy, Prompts, Replies


@dataclass(frozen=True)
class BestOfNSettings:
    """policy: the base policy folder, hub id or alias; ensemble: the reward ensemble that reranks; N."""

    policy: str = field(metadata={"path": True})
    ensemble: str = field(metadata={"path": True})
    num_candidates: int = 4

    def __post_init__(self):
        if not isinstance(self.num_candidates, int) or self.num_candidates < 1:
            raise ConfigError(f"num_candidates: must be a whole number > 0, got {self.num_candidates!r}")


class BestOfNPolicy(PreferencePolicy):
    kind = "best-of-n"
    Settings = BestOfNSettings

    def __init__(self, settings: BestOfNSettings, options: LoadOptions):
        from preforch.serving.policies.folder import load_preference_policy

        super().__init__(settings, options)
        self.ensemble = options.ensemble(settings.ensemble)
        self.base = load_preference_policy(settings.policy, objectives=self.ensemble.objectives, options=options)

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.ensemble.objectives)

    @property
    def shares_candidates(self) -> bool:
        return self.base.shares_candidates

    def conditioned(self, prompts: Prompts, weights: torch.Tensor) -> list[tuple[Message, ...]]:
        return self.base.conditioned(prompts, weights)

    def check_sampling(self, sampling: SamplingConfig) -> None:
        n = self.settings.num_candidates
        if sampling.temperature == 0 and n > 1:
            raise ConfigError("temperature: 0 (greedy) gives best-of-n identical candidates; use --method plain or a "
                              "temperature > 0")
        if sampling.num_candidates > n:
            raise ConfigError(f"best-of-{n} cannot return {sampling.num_candidates} replies per prompt")
        self.base.check_sampling(self._base_sampling(sampling))

    def _base_sampling(self, sampling: SamplingConfig) -> SamplingConfig:
        return replace(sampling, num_candidates=self.settings.num_candidates)

    def candidates(self, prompts: Prompts, weightings: Sequence[torch.Tensor], sampling: SamplingConfig) -> Replies:
        return self.base.candidates(prompts, weightings, self._base_sampling(sampling))

    def select(self, prompts: Prompts, candidates: Replies, weightings: Sequence[torch.Tensor],
               sampling: SamplingConfig) -> list[Replies]:
        """The sampling.num_candidates best of the base's N replies under each weighting, best first."""
        pools = self.base.select(prompts, candidates, weightings, self._base_sampling(sampling))  # [L][P][N]
        # Over a plain base every weighting has the same pool: score each distinct reply once.
        pairs = list(dict.fromkeys((p, reply) for pool in pools for p, row in enumerate(pool) for reply in row))
        scores = self.ensemble.score([prompts[p] for p, _ in pairs], [reply for _, reply in pairs], progress=True)  # [R, K]
        row_of = {pair: i for i, pair in enumerate(pairs)}
        out = []
        for pool, w in zip(pools, weightings):
            index = torch.tensor([[row_of[(p, reply)] for reply in row] for p, row in enumerate(pool)])  # [P, N]
            combined = combined_reward(scores[index], w.unsqueeze(1))  # [P, N]
            order = combined.sort(dim=-1, descending=True, stable=True).indices  # ties: the earlier sample
            out.append([[row[i] for i in best[:sampling.num_candidates].tolist()] for row, best in zip(pool, order)])
        return out
