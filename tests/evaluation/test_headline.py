import math

import numpy as np
import pytest

from preforch.errors import DataError
from preforch.evaluation.headline import bold_if_clear, interaction, mcnemar, noise_floor, pooled_paired_bootstrap
from preforch.evaluation.metrics import stratified_bootstrap


def test_pooled_constant_differences_collapse_the_ci_to_the_mean():
    # 2 seeds x 4 prompts: per prompt the seed mean is 2 on source a, 1 on source b
    seeds = [np.array([1.0, 1.0, 3.0, 3.0]), np.array([3.0, 3.0, -1.0, -1.0])]
    p = pooled_paired_bootstrap(seeds, ["a", "a", "b", "b"])
    assert p["a"] == {"mean": 2.0, "ci95": [2.0, 2.0], "n": 2} and p["b"] == {"mean": 1.0, "ci95": [1.0, 1.0], "n": 2}
    assert p["overall"] == {"mean": 1.5, "ci95": [1.5, 1.5], "n": 4}


def test_pooled_mean_is_the_mean_of_source_means_of_seed_pooled_differences():
    sources = ["a", "a", "a", "b"]
    p = pooled_paired_bootstrap([np.array([0.0, 1.0, 2.0, 4.0]), np.array([2.0, 3.0, 4.0, 2.0])], sources)
    # per prompt [1, 2, 3, 3]: a = 2, b = 3, overall (2 + 3) / 2 = 2.5 (not the prompt mean 2.25)
    assert p["a"]["mean"] == pytest.approx(2.0) and p["b"]["mean"] == pytest.approx(3.0)
    assert p["overall"]["mean"] == pytest.approx(2.5)
    lo, hi = p["a"]["ci95"]
    assert 1.0 <= lo < 2.0 < hi <= 3.0  # a resample of a's three prompts stays within [1, 3]


def test_pooled_resamples_the_same_prompts_for_every_seed():
    # seed 1 is seed 0 negated: shared draws cancel exactly; independent draws per seed would give a wide CI
    d = np.array([-3.0, 1.0, 4.0, -2.0, 5.0, 0.5])
    p = pooled_paired_bootstrap([d, -d], ["a", "b"] * 3)
    assert p["overall"] == {"mean": 0.0, "ci95": [0.0, 0.0], "n": 6}


def test_pooled_with_one_seed_is_the_stratified_bootstrap():
    d = np.random.default_rng(1).normal(size=12)
    sources = ["a", "b", "c"] * 4
    assert pooled_paired_bootstrap([d], sources, num_samples=300, seed=4) == stratified_bootstrap(d, sources, 300, 4)


def test_pooled_refuses_seeds_on_other_prompts():
    with pytest.raises(DataError, match="same 2 prompts"):
        pooled_paired_bootstrap([np.zeros(2), np.zeros(3)], ["a", "b"])


def test_noise_floor_of_two_seeds_is_seed_1_minus_seed_0():
    sources = ["x", "x", "y", "y"]
    f = noise_floor([np.array([1.0, 1.0, 2.0, 2.0]), np.array([2.0, 2.0, 5.0, 5.0])], sources)
    assert f["x"]["mean"] == 1.0 and f["y"]["mean"] == 3.0 and f["overall"] == {"mean": 2.0, "ci95": [2.0, 2.0], "n": 4}
    a = list(np.random.default_rng(2).normal(size=(2, 4)))
    assert noise_floor(a, sources) == pooled_paired_bootstrap([a[1] - a[0]], sources)


def test_noise_floor_of_three_seeds_is_the_pair_that_reaches_furthest():
    # seeds constant at 0, 1, -2: pairs 1 - 0 = 1, -2 - 0 = -2, -2 - 1 = -3
    f = noise_floor([np.zeros(4), np.ones(4), np.full(4, -2.0)], ["x", "y"] * 2)
    assert f["overall"] == {"mean": -3.0, "ci95": [-3.0, -3.0], "n": 4}
    with pytest.raises(DataError, match="two training seeds"):
        noise_floor([np.zeros(4)], ["x", "y"] * 2)


def test_interaction_needs_both_lower_bounds_above_zero():
    i = interaction(np.full(3, 0.5), np.ones(2))
    assert i["benign"] == {"mean": 0.5, "ci95": [0.5, 0.5], "n": 3}
    assert i["harmful"] == {"mean": 1.0, "ci95": [1.0, 1.0], "n": 2} and i["both_positive"]
    mixed = interaction(np.array([-1.0, 1.0]), np.ones(2))  # benign: mean 0, a draw of (-1, -1) puts lo at -1
    assert mixed["benign"]["mean"] == 0.0 and mixed["benign"]["ci95"][0] == -1.0 and not mixed["both_positive"]
    with pytest.raises(DataError, match="benign and harmful"):
        interaction(np.array([]), np.ones(2))


def test_mcnemar_exact_on_the_discordant_pairs():
    # 10 right only under a, 2 only under b, 5 both right, 3 both wrong
    a = np.array([True] * 10 + [False] * 2 + [True] * 5 + [False] * 3)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5 + [False] * 3)
    m = mcnemar(a, b)
    p = 2 * (1 + 12 + 66) / 2 ** 12  # two-sided: 2 P(X <= 2), X ~ Binomial(12, 1/2)
    assert m["a_only"] == 10 and m["b_only"] == 2 and m["p_value"] == pytest.approx(p)
    assert mcnemar(b, a) == {"a_only": 2, "b_only": 10, "p_value": pytest.approx(p)}
    assert mcnemar(a, a)["p_value"] == 1.0  # no discordant problem: no evidence
    with pytest.raises(DataError, match="same problems"):
        mcnemar(a, b[:-1])


def test_bold_only_beyond_zero_and_the_noise_floor():
    floor = {"mean": -0.3, "ci95": [-0.5, -0.1]}  # reaches 0.3 + 0.2 = 0.5
    assert bold_if_clear({"mean": 1.0, "ci95": [0.5, 1.5]}, floor)
    assert bold_if_clear({"mean": -1.0, "ci95": [-1.5, -0.5]}, floor)  # a clear loss too
    assert not bold_if_clear({"mean": 0.4, "ci95": [0.1, 0.7]}, floor)  # excludes 0, within the floor
    assert not bold_if_clear({"mean": 1.0, "ci95": [-0.1, 2.1]}, floor)  # beyond the floor, CI holds 0
    assert not bold_if_clear({"mean": 0.5, "ci95": [0.2, 0.8]}, floor)  # equal to the floor is not beyond it
