"""Rewards and where they apply: `Scores`, and the math every consumer of a mask shares (DESIGN.md section 8).

An objective may not apply to a (prompt, reply): exact match on a prompt that is no problem, a format check on a
reply with nothing to check. That is neither a low nor a high score, so nothing downstream may read a number there:
normalisation fits each objective on the replies it applies to, the combined reward sums over the objectives that
apply with their weights renormalised to 1, targets, filters and evaluation means skip it.

`Scores.applies` is the truth. `Scores.values` hold NaN where it is False, so code that forgets the mask fails
loudly instead of reading a made-up score; `filled` gives a plain tensor where a neutral value is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from preforch.errors import DataError


@dataclass(frozen=True)
class Scores:
    """values [..., K] float (NaN where not applicable) and applies [..., K] bool, always the same shape."""

    values: torch.Tensor
    applies: torch.Tensor

    def __post_init__(self):
        if self.values.shape != self.applies.shape:
            raise ValueError(f"scores {tuple(self.values.shape)} and mask {tuple(self.applies.shape)} differ in shape")
        applies = self.applies.bool()
        object.__setattr__(self, "applies", applies)
        object.__setattr__(self, "values", torch.where(applies, self.values.float(), torch.nan))

    @classmethod
    def dense(cls, values: torch.Tensor) -> "Scores":
        """Every objective applies to every item: values [..., K] must be finite (NaN would be ambiguous here)."""
        values = torch.as_tensor(values, dtype=torch.float32)
        if values.isnan().any():
            raise DataError("scores contain NaN: say where an objective does not apply with Scores(values, applies)")
        return cls(values, torch.ones_like(values, dtype=torch.bool))

    @classmethod
    def from_nan(cls, values: torch.Tensor) -> "Scores":
        """TRL's convention at a reward function's boundary: None (NaN) means not applicable."""
        values = torch.as_tensor(values, dtype=torch.float32)
        return cls(values, ~values.isnan())

    @classmethod
    def cat(cls, parts: Sequence["Scores"], dim: int = 0) -> "Scores":
        return cls(torch.cat([p.values for p in parts], dim), torch.cat([p.applies for p in parts], dim))

    @classmethod
    def stack(cls, parts: Sequence["Scores"], dim: int = 0) -> "Scores":
        return cls(torch.stack([p.values for p in parts], dim), torch.stack([p.applies for p in parts], dim))

    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index) -> "Scores":
        return Scores(self.values[index], self.applies[index])

    def view(self, *shape: int) -> "Scores":
        return Scores(self.values.reshape(*shape), self.applies.reshape(*shape))

    def to(self, device) -> "Scores":
        return Scores(self.values.to(device), self.applies.to(device))

    def __sub__(self, other: "Scores") -> "Scores":
        """Differences (e.g. chosen - rejected), defined where both apply."""
        return Scores(self.values - other.values, self.applies & other.applies)

    def filled(self, value: float = 0.0) -> torch.Tensor:
        """A plain tensor with `value` where the objective does not apply (0 is neutral in a weighted sum)."""
        return torch.where(self.applies, self.values, value)

    def tolist(self) -> list:
        """Nested lists with None where the objective does not apply (what JSON replies and files carry)."""
        return _nan_to_none(self.values.tolist())

    def means(self) -> tuple[list[float | None], list[int]]:
        """Per-objective mean over the items each applies to, and how many: [N, K] -> ([K], [K]); None where none."""
        n = self.applies.sum(0)
        total = self.filled(0.0).double().sum(0)
        return [float(t / c) if c else None for t, c in zip(total, n.tolist())], n.tolist()


def _nan_to_none(x):
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return None if x != x else x


def as_scores(x: "Scores | torch.Tensor") -> Scores:
    """`x` itself, or a plain tensor taken as every objective applying (`Scores.dense`)."""
    return x if isinstance(x, Scores) else Scores.dense(x)


def _refuse_unscorable(applies: torch.Tensor, where: str) -> None:
    """A `DataError` naming the first item of applies [..., K] where no objective applies: it has no score at all."""
    none = ~applies.any(-1)
    if none.any():
        first = [int(i) for i in none.nonzero()[0]]
        raise DataError(f"{where}: no objective applies to item {first[0] if len(first) == 1 else tuple(first)}")


def applicable_weights(weights: torch.Tensor, applies: torch.Tensor, where: str = "combined reward") -> torch.Tensor:
    """The weights of the objectives that apply, renormalised to sum 1 per item (DESIGN.md section 8).

    weights [..., K] (or [K]) on the simplex, applies [..., K] bool -> [..., K]. An item whose applicable objectives
    all have weight 0 gets all zeros (its preference cares about nothing that applies: every reply ties). An item
    where no objective applies is refused, naming it: it cannot be scored at all.
    """
    weights = torch.as_tensor(weights).to(applies.device, torch.float32).expand(applies.shape)
    _refuse_unscorable(applies, where)
    masked = weights * applies
    mass = masked.sum(-1, keepdim=True)
    return torch.where(mass > 0, masked / mass.clamp_min(torch.finfo(masked.dtype).tiny), 0.0)


def combined_reward(normalized: "Scores | torch.Tensor", weights: torch.Tensor) -> torch.Tensor:
    """R(x, y) = sum_i w_i r~_i(x, y) (paper Eq. 4, with w = f_phi(x) as in Eq. 9), over the objectives that apply,
    their weights renormalised to 1 (`applicable_weights`); with every objective applying it is the plain sum.

    normalized: [..., K] normalised rewards; weights: [..., K] broadcastable to it. Returns [...].
    """
    s = as_scores(normalized)
    return (s.filled(0.0) * applicable_weights(weights, s.applies)).sum(-1)


def masked_softmax(logits: torch.Tensor, applies: torch.Tensor, where: str = "weights") -> torch.Tensor:
    """softmax over the objectives that apply, 0 on the others: [..., K] x [..., K] bool -> [..., K] on the simplex."""
    _refuse_unscorable(applies, where)
    return torch.softmax(logits.float().masked_fill(~applies, float("-inf")), dim=-1)


def masked_quantile(scores: "Scores | torch.Tensor", q: float) -> torch.Tensor:
    """Per-objective q-quantile over the items each objective applies to: [N, K] -> [K] (NaN where none applies)."""
    s = as_scores(scores)
    return torch.nanquantile(s.values.float(), q, dim=0)
