"""Preference-weight vectors: parsing user input and checking they lie on the probability simplex.

A `--weights` spec fixes some objectives and may end in `auto`: the orchestrator then fills the rest per
prompt (`fill_preference`). Without `auto` the spec is the whole vector and must sum to 1.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch

import numpy as np

from preforch.errors import ConfigError, WeightsError

SIMPLEX_ATOL = 1e-4
AUTO = "auto"
# Below this total the orchestrator's free weights carry no usable ratios (underflow), so the rest is split evenly.
NEGLIGIBLE_MASS = 1e-12


def check_simplex(weights: torch.Tensor, objectives: Sequence[str], where: str = "weights") -> torch.Tensor:
    """Validate `weights` [K] or [B, K] against `objectives` (K names); return it as float32.

    Raises `WeightsError` for a wrong K, NaN/inf, negative entries or rows that do not sum to 1.
    """
    w = torch.as_tensor(weights, dtype=torch.float32)
    k = len(objectives)
    if w.dim() not in (1, 2) or w.shape[-1] != k:
        raise WeightsError(f"{where}: expected {k} weights for objectives {list(objectives)}, got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise WeightsError(f"{where}: weights contain NaN or inf: {w.tolist()}")
    if (w < 0).any():
        raise WeightsError(f"{where}: weights must be non-negative, got {w.tolist()}")
    sums = w.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=SIMPLEX_ATOL):
        raise WeightsError(f"{where}: weights must sum to 1 (on the simplex), got sum(s) {sums.tolist()}")
    return w


def parse_named_values(items: Iterable[str], objectives: Sequence[str], where: str) -> dict[str, float]:
    """`name=value` items -> {name: value}. A `WeightsError` starting with `where` for a missing '=', an
    unknown or repeated objective, or a value that is not a finite number."""
    values: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise WeightsError(f"{where}: expected name=value, got {item!r} (e.g. {objectives[0]}=1.0)")
        if name not in objectives:
            raise WeightsError(f"{where}: unknown objective {name!r}; objectives are {list(objectives)}")
        if name in values:
            raise WeightsError(f"{where}: objective {name!r} given twice")
        try:
            values[name] = float(value)
        except ValueError:
            raise WeightsError(f"{where}: {name}={value!r} is not a number") from None
        if not math.isfinite(values[name]):
            raise WeightsError(f"{where}: {name}={value!r} is not a finite number (NaN or inf)")
    return values


@dataclass(frozen=True)
class PartialPreference:
    """A parsed `--weights` spec: `fixed` {objective: weight}; with `auto`, the orchestrator fills the objectives
    not named, per prompt, with the mass 1 - sum(fixed) left over."""

    fixed: Mapping[str, float]
    auto: bool = False

    def fixed_vector(self, objectives: Sequence[str]) -> torch.Tensor:
        """[K] the fixed weights ordered like `objectives`, 0 for the others."""
        return torch.tensor([float(self.fixed.get(o, 0.0)) for o in objectives])


def parse_preference(spec: str, objectives: Sequence[str], where: str = "--weights") -> PartialPreference:
    """Parse `"harmless=0.5,auto"` (or a full `"helpful=0.7,harmless=0.3"`) against `objectives`.

    Raises `WeightsError` starting with `where` for: an unknown, repeated or non-numeric entry; a negative
    weight; fixed weights summing above 1; `auto` twice; `auto` with every objective fixed below 1 (nothing
    left to fill it); and, without `auto`, weights that do not sum to 1 (no silent renormalisation: a typo like
    0.7/0.2 should be an error, not a different preference).
    """
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise WeightsError(f"{where}: empty weight specification")
    autos = items.count(AUTO)
    if autos > 1:
        raise WeightsError(f"{where}: {AUTO!r} given twice")
    values = parse_named_values([i for i in items if i != AUTO], objectives, where)
    negative = {n: v for n, v in values.items() if v < 0}
    if negative:
        raise WeightsError(f"{where}: weights must be non-negative, got {negative}")
    total = sum(values.values())
    if total > 1 + SIMPLEX_ATOL:
        raise WeightsError(f"{where}: fixed weights sum to {total:.4g}, more than 1")
    pref = PartialPreference(values, auto=autos == 1)
    if not pref.auto:
        check_simplex(pref.fixed_vector(objectives), objectives, where)
    elif len(values) == len(objectives) and total < 1 - SIMPLEX_ATOL:
        raise WeightsError(f"{where}: {AUTO!r} has nothing to fill: every objective is fixed and they sum to "
                           f"{total:.4g} < 1")
    return pref


def parse_weights(spec: str, objectives: Sequence[str]) -> torch.Tensor:
    """Parse a full spec `"helpful=0.7,harmless=0.3"` into a [K] tensor ordered like `objectives`.

    Objectives left out get weight 0 and the result must be on the simplex (see `parse_preference`). A spec
    with `auto` is refused: only per-prompt orchestrator weights complete it (`fill_preference`).
    """
    pref = parse_preference(spec, objectives)
    if pref.auto:
        raise WeightsError(f"--weights: {AUTO!r} needs the orchestrator's per-prompt weights; give a full vector here")
    return pref.fixed_vector(objectives)


def fill_preference(partial: PartialPreference, orchestrator_weights: torch.Tensor,
                    objectives: Sequence[str]) -> torch.Tensor:
    """Complete `partial` for each prompt: orchestrator_weights [P, K] -> weights [P, K] on the simplex.

    Fixed entries are kept exactly; with `auto`, free objective j gets (1 - sum fixed) * o_j / sum_free o_k,
    or an even share of the rest where the orchestrator gives every free objective ~0 weight. Without `auto`
    (or with nothing free) every row is the fixed vector.
    """
    o = check_simplex(orchestrator_weights, objectives, "orchestrator output")
    fixed = partial.fixed_vector(objectives)  # [K]
    free = torch.tensor([name not in partial.fixed for name in objectives], dtype=torch.float32)  # [K]
    if not partial.auto or not free.any():
        return fixed.expand_as(o).clone()
    rest = (1.0 - fixed.sum()).clamp_min(0.0)  # fixed may exceed 1 by up to SIMPLEX_ATOL
    o_free = o * free  # [P, K]
    mass = o_free.sum(-1, keepdim=True)  # [P, 1]
    share = torch.where(mass > NEGLIGIBLE_MASS, o_free / mass.clamp_min(NEGLIGIBLE_MASS), free / free.sum())
    return check_simplex(fixed + rest * share, objectives, "filled preference")


def format_weights(weights: Sequence[float], objectives: Sequence[str], digits: int = 3) -> str:
    """Inverse of `parse_weights` (rounded): `"helpful=0.700,harmless=0.300"`."""
    return ",".join(f"{o}={float(w):.{digits}f}" for o, w in zip(objectives, weights))


def simplex_grid(num_objectives: int, divisions: int) -> np.ndarray:
    """All weight vectors with entries in {0, 1/d, ..., 1} summing to 1: [M, K], M = C(d+K-1, K-1).

    K = 2, d = 10 gives the usual 11 points (1, 0), (0.9, 0.1), ..., (0, 1).
    """
    if num_objectives < 1 or divisions < 1:
        raise ConfigError(f"simplex grid needs K >= 1 and divisions >= 1, got K={num_objectives}, d={divisions}")
    rows = [c for c in itertools.product(range(divisions + 1), repeat=num_objectives) if sum(c) == divisions]
    return np.array(sorted(rows, reverse=True), dtype=np.float64) / divisions


def random_simplex(n: int, k: int, seed: int) -> torch.Tensor:
    """n weight vectors drawn uniformly from the simplex (Dirichlet(1) via normalised exponentials): [n, k]."""
    e = -torch.log(torch.rand(n, k, generator=torch.Generator().manual_seed(seed)).clamp_min(1e-12))
    return e / e.sum(-1, keepdim=True)


def ric_goal_weights(n: int, k: int, seed: int) -> torch.Tensor:
    """RiC's online preference sampling (`sample_goals` in YangRui2015/RiC) as weights: [n, k] on the simplex.

    RiC draws k target scores uniformly over the score range and lifts every one but the smallest to the top, so
    each goal asks for the best of all objectives but one. Under RiC's preference-to-target map (target_i = high_i
    when w_i >= 1/k, else low_i + k w_i (high_i - low_i)), the same goals come from weights with one objective, chosen
    uniformly, at w = min of k uniform draws on [0, 1/k) and the others sharing the rest equally (each >= 1/k)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, k, generator=g).min(-1).values / k  # [n]: the one objective below the top
    which = torch.randint(0, k, (n,), generator=g)
    w = ((1 - low) / (k - 1))[:, None].expand(n, k).clone()
    w[torch.arange(n), which] = low
    return w
