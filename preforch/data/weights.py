"""Preference-weight vectors: parsing user input and checking they lie on the probability simplex."""

from __future__ import annotations

import itertools
import math
from typing import Iterable, Sequence

import torch

import numpy as np

from preforch.errors import ConfigError, WeightsError

SIMPLEX_ATOL = 1e-4


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


def parse_weights(spec: str, objectives: Sequence[str]) -> torch.Tensor:
    """Parse `"helpful=0.7,harmless=0.3"` into a [K] tensor ordered like `objectives`.

    Objectives left out get weight 0. The result must be on the simplex (no silent renormalisation:
    a typo like 0.7/0.2 should be an error, not a different preference).
    """
    values = parse_named_values(filter(None, (s.strip() for s in spec.split(","))), objectives, "--weights")
    if not values:
        raise WeightsError("--weights: empty weight specification")
    return check_simplex(torch.tensor([values.get(o, 0.0) for o in objectives]), objectives, "--weights")


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
