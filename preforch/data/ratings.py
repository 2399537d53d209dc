"""Rated preference pairs: a pair plus an overall score for each reply (UltraFeedback's 1-10 ratings), and the
binning of scores into ordinal intensity levels for MOSLIM's `quality` head.

A record is any preference record `load_file` accepts, with `score_chosen` and `score_rejected` either at the
top level or inside `metadata` (as the bundled UltraFeedback sample has them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from preforch.data.loaders import BUNDLED, bundled_path, convert_records, record_to_pair
from preforch.data.schema import PreferencePair
from preforch.errors import DataError

SCORE_RANGE = (1.0, 10.0)  # UltraFeedback's overall score
SCORE_FIELDS = ("score_chosen", "score_rejected")


@dataclass(frozen=True)
class RatedPair:
    pair: PreferencePair
    score_chosen: float
    score_rejected: float


def score_level(score: float, num_levels: int, low: float = SCORE_RANGE[0], high: float = SCORE_RANGE[1]) -> int:
    """Equal-width bin of `score` in [low, high]: 0 .. num_levels - 1 (high itself falls in the top bin).

    With UltraFeedback's 1-10 scale and 5 levels the bins are 1.8 wide: [1, 2.8), [2.8, 4.6), [4.6, 6.4),
    [6.4, 8.2), [8.2, 10]. Equal widths keep the levels' meaning fixed (not tied to this sample's quantiles).
    """
    return min(num_levels - 1, int((score - low) / (high - low) * num_levels + 1e-9))  # 1e-9: 2.8 is exactly a bin edge


def _score(record: dict, field: str, where: str) -> float:
    holder = record if field in record else record.get("metadata") or {}
    value = holder.get(field) if isinstance(holder, dict) else None
    if value is None or value == "":
        raise DataError(f"{where}: missing field '{field}' (a rated pair needs {' and '.join(SCORE_FIELDS)}, "
                        "at the top level or in 'metadata')")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: field '{field}' must be a number, got {value!r}") from None
    low, high = SCORE_RANGE
    if not (math.isfinite(score) and low <= score <= high):
        raise DataError(f"{where}: field '{field}' = {value!r} is outside the score range [{low:g}, {high:g}]")
    return score


def load_rated(spec: str, limit: int | None = None) -> list[RatedPair]:
    """Rated pairs of a bundled set (`ultrafeedback[:split]`) or a file; a bad record raises `DataError` naming
    file:line and field (the bundled upstream sample drops its few malformed records with a warning instead)."""
    name, _, split = spec.partition(":")
    bundled = name in BUNDLED
    path, source = (bundled_path(name, split or "train"), BUNDLED[name][1]) if bundled else (spec, Path(spec).name.split(".")[0])

    def convert(record, where: str) -> RatedPair:
        pair = record_to_pair(record, where, source)
        return RatedPair(pair, *(_score(record, f, where) for f in SCORE_FIELDS))

    return convert_records(path, convert, limit, skip_invalid=bundled)
