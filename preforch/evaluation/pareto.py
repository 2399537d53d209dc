"""Preference grids, Pareto fronts and hypervolume (all objectives maximised).

Front extraction and hypervolume come from moocore (a maintained C library) rather than hand-written
code; this module validates shapes and reference points and fixes the maximisation convention.
"""

from __future__ import annotations

import warnings

from typing import Sequence

import numpy as np

from preforch.data.weights import simplex_grid  # noqa: F401  (the grid lives with the other simplex helpers)
from preforch.errors import ConfigError, DataError, WeightsError


def check_grid(grid: np.ndarray, objectives: Sequence[str], atol: float = 1e-6) -> np.ndarray:
    """Validate a user grid [M, K]: right K, finite, non-negative, rows summing to 1 (names the bad row)."""
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or grid.shape[1] != len(objectives) or len(grid) == 0:
        raise WeightsError(f"preference grid: expected rows of {len(objectives)} weights for {list(objectives)}, "
                           f"got shape {grid.shape}")
    for i, row in enumerate(grid):
        if not np.isfinite(row).all() or (row < 0).any() or abs(row.sum() - 1) > atol:
            raise WeightsError(f"preference grid row {i} {row.tolist()} is not on the simplex "
                               "(non-negative, summing to 1)")
    return grid


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean [N]: True for points no other point dominates (>= on every objective, > on one)."""
    import moocore

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise ConfigError(f"Pareto front needs points of shape [N, K] with N >= 1, got {points.shape}")
    return np.asarray(moocore.is_nondominated(points, maximise=True, keep_weakly=True))


def check_reference_point(reference_point: Sequence[float] | None, num_objectives: int) -> np.ndarray:
    """A finite [K] reference point, or a `ConfigError` saying what is missing or wrong."""
    if reference_point is None:
        raise ConfigError("hypervolume needs a reference point (one value per objective, worse than every "
                          "method on every objective, e.g. --reference_point -2 -2); keep it fixed across runs")
    ref = np.asarray(reference_point, dtype=np.float64)
    if ref.shape != (num_objectives,):
        raise ConfigError(f"reference_point: expected {num_objectives} values (one per objective), got {ref.size}")
    if not np.isfinite(ref).all():
        raise ConfigError(f"reference point must be finite, got {ref.tolist()}")
    return ref


def reference_point_or_default(reference_point: Sequence[float] | None, num_objectives: int) -> list[float]:
    """The comparison pipelines' reference point: the given one, checked, or -2 per objective (normalised
    scores are z-scores, so -2 is worse than almost every policy on every objective)."""
    if reference_point is None:
        return [-2.0] * num_objectives
    return check_reference_point(reference_point, num_objectives).tolist()


def hypervolume(points: np.ndarray, reference_point: Sequence[float] | None) -> float:
    """Volume dominated by `points` [N, K] and bounded below by `reference_point` [K].

    The reference point must be given (it changes every value, so results are only comparable under the
    same one). Points that do not strictly dominate it contribute nothing.
    """
    import moocore

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ConfigError(f"hypervolume needs points of shape [N, K], got {points.shape}")
    ref = check_reference_point(reference_point, points.shape[1])
    inside = points[(points > ref).all(axis=1)]
    if len(inside) == 0:
        if len(points):  # 0 here says nothing about the policy, only that the reference point is too high
            warnings.warn(f"hypervolume: the reference point {ref.tolist()} is not dominated by any of the "
                          f"{len(points)} points, so it is 0; lower --reference_point", stacklevel=2)
        return 0.0
    return float(moocore.hypervolume(inside, ref=ref, maximise=True))


def front_objectives(rows: Sequence[dict], objectives: Sequence[str]) -> list[str]:
    """The objectives a front and its hypervolume are over: those with a mean in every row (`{"mean": {objective:
    float | None}}`). One that applies to none of the prompts of some row has no mean there and is left out, not
    filled in; `DataError` when that leaves none."""
    kept = [o for o in objectives if all(r["mean"][o] is not None for r in rows)]
    if not kept:
        raise DataError(f"no objective of {list(objectives)} applies to the evaluated prompts: no front to draw")
    return kept


def mean_points(rows: Sequence[dict], objectives: Sequence[str]) -> np.ndarray:
    """The rows' mean rewards on `objectives` as points [len(rows), len(objectives)]."""
    points = np.array([[r["mean"][o] for o in objectives] for r in rows], dtype=np.float64)
    return points.reshape(len(rows), len(objectives))
