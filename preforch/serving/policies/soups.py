"""Kind `soups`: Rewarded Soups (Rame et al. 2023): the per-objective experts merged in weight space by w, then
decoded as one model, through peft's `add_weighted_adapter`.

combination `cat` (default) gives exactly the weighted sum of the experts' weight deltas, sum_i w_i s_i B_i A_i
(s_i: expert i's LoRA scaling): peft stacks the weighted A_i and the B_i into one adapter of rank sum_i r_i.
`linear` is the original's interpolation of the LoRA matrices themselves, A = sum_i w_i A_i and B = sum_i w_i B_i,
whose product has cross terms w_i w_j B_i A_j: it does not interpolate the experts' deltas (DESIGN.md section 2).
A merged adapter is made once per w (rounded to DECIMALS) and the latest KEPT are cached, so prompts under one
w merge once. A `cat` call whose prompts carry different w (the orchestrator's per-prompt weights) decodes them in
one batch instead, unmerged: every expert active, each LoRA layer's scaling of expert i set per row to w_i s_i, so
row r computes base + sum_i w_ri s_i B_i A_i x_r, the same sum the merge stores (`row_scaling`). `linear` answers
in groups of equal w.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from preforch.errors import ConfigError
from preforch.generation.expert_set import EXPERTS_FILE
from preforch.generation.sampling import SamplingConfig, sample_candidates
from preforch.serving.policies.experts import ExpertsPolicy
from preforch.serving.policies.policy import LoadOptions, Prompts, Replies

COMBINATIONS = ("cat", "linear")
DECIMALS = 4
KEPT = 4  # merged adapters cached; a `cat` one holds as many weights as all the experts together


@dataclass(frozen=True)
class SoupsSettings:
    """policy: a train-experts folder; combination: cat (the exact weighted sum of the experts' deltas) | linear
    (the original's separate interpolation of the A and B matrices)."""

    policy: str = field(metadata={"path": True})
    combination: str = "cat"

    def __post_init__(self):
        if self.combination not in COMBINATIONS:
            raise ConfigError(f"combination: expected one of {', '.join(COMBINATIONS)}, got {self.combination!r}")


def weight_groups(weights: torch.Tensor, decimals: int = DECIMALS) -> dict[tuple[float, ...], list[int]]:
    """Rows of weights [N, K] grouped by their values rounded to `decimals`: {rounded w: row indices}, in order."""
    groups: dict[tuple[float, ...], list[int]] = {}
    for i, row in enumerate(weights.tolist()):
        groups.setdefault(tuple(round(x, decimals) for x in row), []).append(i)
    return groups


@contextmanager
def row_scaling(model, names: Sequence[str]) -> Iterator[Callable[[torch.Tensor], None]]:
    """Within: the peft `model`'s adapters `names` all active, and `scale(w)` with w [B, K] sets each LoRA layer's
    scaling of adapter i to its own times w[:, i] per batch row ([B, 1, 1], broadcast over tokens and features).
    On exit the scalings and the active adapter are as they were."""
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    saved = [dict(m.scaling) for m in layers]
    previous = model.active_adapter

    def scale(w: torch.Tensor) -> None:
        for layer, own in zip(layers, saved):
            for i, name in enumerate(names):
                if name in own:
                    layer.scaling[name] = own[name] * w[:, i].view(-1, 1, 1).to(model.device)

    model.base_model.set_adapter(list(names))
    try:
        yield scale
    finally:
        for layer, own in zip(layers, saved):
            layer.scaling.update(own)
        model.set_adapter(previous)


class SoupsPolicy(ExpertsPolicy):
    kind = "soups"
    Settings = SoupsSettings
    marker_file = EXPERTS_FILE  # a bare train-experts folder serves as soups; as mod only when asked for by name

    def __init__(self, settings: SoupsSettings, options: LoadOptions):
        super().__init__(settings, options)
        configs = self.experts.adapter_configs
        if any(c.get("use_dora") or c.get("use_rslora") for c in configs):
            raise ConfigError(f"{self.experts.file}: soups merges plain LoRA experts (no DoRA, no rank-stabilised LoRA)")
        shape = {(c.get("r"), c.get("lora_alpha"), str(c.get("rank_pattern")), str(c.get("alpha_pattern"))) for c in configs}
        if settings.combination == "linear" and len(shape) > 1:
            raise ConfigError(f"{self.experts.file}: combination 'linear' interpolates A and B matrices of one shape and "
                              "scaling: the experts' adapter_config.json must agree on r and lora_alpha (use 'cat')")
        self._merged: OrderedDict[tuple[float, ...], str] = OrderedDict()
        self._names = (f"soup{i}" for i in itertools.count())

    def adapter(self, weights: Sequence[float]) -> str:
        """Activate and name the adapter that answers under preference `weights` [K]: an expert as it is at a
        corner of the simplex, else the experts merged by w (made on first use, then cached by w)."""
        model, _ = self.model_and_tokenizer()
        used = [i for i, w in enumerate(weights) if w > 0]
        if len(used) == 1:
            model.set_adapter(self.experts.names[used[0]], inference_mode=True)
            return self.experts.names[used[0]]
        key = tuple(weights)
        if key not in self._merged:
            total = sum(weights[i] for i in used)
            ws = [weights[i] / total for i in used]  # rounding may have moved w off the simplex a little
            if self.settings.combination == "linear":
                ws = [w * w for w in ws]  # peft's linear scales A_i and B_i by sqrt(weight) each: w^2 interpolates both by w
            self._merged[key] = name = next(self._names)
            model.add_weighted_adapter([self.experts.names[i] for i in used], ws, name,
                                       combination_type=self.settings.combination)
        self._merged.move_to_end(key)
        model.set_adapter(self._merged[key], inference_mode=True)  # before evicting: never delete the active one
        if len(self._merged) > KEPT:
            model.delete_adapter(self._merged.popitem(last=False)[1])
        return self._merged[key]

    def candidates(self, prompts: Prompts, weightings: Sequence[torch.Tensor], sampling: SamplingConfig) -> Replies:
        from transformers import set_seed

        model, tok = self.model_and_tokenizer()
        asked, weights = self.asked(prompts, weightings), torch.cat(weightings)  # [L * P], [L * P, K]
        groups = weight_groups(weights)
        if len(groups) > 1 and self.settings.combination == "cat":
            n = sampling.num_candidates
            with row_scaling(model, self.experts.names) as scale:
                set_seed(sampling.seed)
                return sample_candidates(model, tok, asked, sampling,
                                         before_batch=lambda rows: scale(weights[rows].repeat_interleave(n, 0)))
        out: Replies = [[] for _ in asked]
        for w, rows in groups.items():
            self.adapter(w)
            set_seed(sampling.seed)  # a group's replies do not depend on the other groups in the call
            for i, replies in zip(rows, sample_candidates(model, tok, [asked[i] for i in rows], sampling)):
                out[i] = replies
        return out
