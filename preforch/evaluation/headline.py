"""The statistics of the pre-registered headline test (docs/design.md, "The headline test, fixed before it
runs"): the primary metric pooled over training seeds, its noise floor, the secondary checks (the
interaction, McNemar on exact match, weight entropy by source) and the rule that bolds a result."""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
from scipy import stats

from preforch.errors import DataError
from preforch.evaluation.metrics import stratified_bootstrap


def pooled_paired_bootstrap(diffs: Sequence[np.ndarray], sources: Sequence[str], num_samples: int = 2000,
                            seed: int = 0) -> dict[str, dict]:
    """The primary metric: per-prompt paired differences (Pro minus best-fixed) pooled over training seeds.

    diffs [S] of [P]: seed s's difference on the same P prompts for every seed; sources [P].
    Returns `stratified_bootstrap`'s {source | "overall": {"mean", "ci95": [lo, hi], "n"}} with n counting prompts.
    Prompts are shared by the seeds, so a bootstrap draw resamples prompts within their source once for all seeds
    and averages over seeds; the mean over seeds commutes with that resampling, so this is exactly
    `stratified_bootstrap` of each prompt's seed-mean difference (with one seed, of the difference itself). Seeds
    are held fixed: their spread is what `noise_floor` measures."""
    if {len(d) for d in diffs} != {len(sources)}:
        raise DataError(f"every seed's differences must cover the same {len(sources)} prompts; got lengths "
                        f"{[len(d) for d in diffs]}")
    return stratified_bootstrap(np.mean(np.asarray(diffs, dtype=np.float64), axis=0), sources, num_samples, seed)


def reach(result: dict) -> float:
    """|mean| plus the CI's half-width of one bootstrap entry ({"mean", "ci95": [lo, hi]}): how far from 0 it
    plausibly reaches."""
    lo, hi = result["ci95"]
    return abs(result["mean"]) + (hi - lo) / 2


def noise_floor(arm: Sequence[np.ndarray], sources: Sequence[str], num_samples: int = 2000,
                seed: int = 0) -> dict[str, dict]:
    """The seed-to-seed difference within one arm, by the primary metric's statistic.

    arm [S >= 2] of [P]: one arm's per-prompt scores per training seed on the same prompts; sources [P].
    Every pair of seeds i < j gives `pooled_paired_bootstrap([arm[j] - arm[i]])`; the floor is the pair whose
    'overall' reaches furthest from 0 (`reach`), so with two seeds it is seed 1 minus seed 0 and with more a
    result must clear every pair. Signed pair differences are not averaged: their signs are arbitrary and would
    cancel. Conservative: one seed against one, where the headline pools S seeds per arm."""
    if len(arm) < 2:
        raise DataError(f"a noise floor needs at least two training seeds of the arm; got {len(arm)}")
    pairs = [pooled_paired_bootstrap([np.asarray(arm[j], dtype=np.float64) - arm[i]], sources, num_samples, seed)
             for i, j in combinations(range(len(arm)), 2)]
    return max(pairs, key=lambda p: reach(p["overall"]))


def interaction(diffs_helpful_on_benign: np.ndarray, diffs_harmless_on_harmful: np.ndarray, num_samples: int = 2000,
                seed: int = 0) -> dict:
    """Pro's gain over best-fixed in helpfulness on benign prompts [P1] and in harmlessness on harmful ones [P2],
    each a percentile-bootstrap {"mean", "ci95": [lo, hi], "n"}; both_positive when both lower bounds are > 0,
    which a global shift toward one objective cannot produce."""
    benign, harmful = np.asarray(diffs_helpful_on_benign), np.asarray(diffs_harmless_on_harmful)
    if not len(benign) or not len(harmful):
        raise DataError(f"the interaction needs benign and harmful prompts; got {len(benign)} and {len(harmful)}")
    boot = stratified_bootstrap(np.concatenate([benign, harmful]),
                                ["benign"] * len(benign) + ["harmful"] * len(harmful), num_samples, seed)
    return {"benign": boot["benign"], "harmful": boot["harmful"],
            "both_positive": boot["benign"]["ci95"][0] > 0 and boot["harmful"]["ci95"][0] > 0}


def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> dict:
    """Exact McNemar test on paired right/wrong per problem: right_a, right_b [P] bool. a_only / b_only count the
    discordant problems; p_value is the two-sided exact binomial test (`scipy.stats.binomtest`) of a_only among
    them against 1/2, and 1.0 when there are none (no evidence either way)."""
    a, b = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    if a.shape != b.shape:
        raise DataError(f"McNemar pairs the same problems; got {a.shape} and {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    p = stats.binomtest(a_only, a_only + b_only).pvalue if a_only + b_only else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": float(p)}


def bold_if_clear(ci: dict, floor: dict) -> bool:
    """Whether a headline result is bolded: ci and floor are bootstrap entries {"mean", "ci95": [lo, hi]} (the
    'overall' of `pooled_paired_bootstrap` and of `noise_floor`). True only when the CI excludes 0 (lo > 0 or
    hi < 0, strictly) and |mean| > |floor mean| + floor half-width ((hi - lo) / 2), i.e. the result is larger than
    the seed-to-seed difference plausibly reaches. Sign-symmetric: a clear loss is bolded too."""
    lo, hi = ci["ci95"]
    return (lo > 0 or hi < 0) and abs(ci["mean"]) > reach(floor)
