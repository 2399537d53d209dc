import math

import numpy as np
import pytest
import torch

from preforch.errors import DataError
from preforch.evaluation.metrics import (head_specialization, interference, mean_ci, objective_means,
                                         scores_from_lists, steering_monotonicity)
from preforch.rewards.scores import Scores


def test_steering_monotonicity_by_hand():
    grid = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    steered = np.array([[0.9, -0.5], [0.4, 0.1], [-0.2, 0.8]])[:, None]  # more weight, more reward: monotone in both
    s = steering_monotonicity(grid, steered, ["a", "b"])
    assert s["a"]["spearman"] == pytest.approx(1.0) and s["b"]["non_decreasing_steps"] == 1.0
    assert s["a"]["reward_at_lowest"] == pytest.approx(-0.2) and s["a"]["reward_at_highest"] == pytest.approx(0.9)
    assert s["a"]["gain"] == pytest.approx(1.1) and s["a"]["gain_ci95"] is None  # one prompt: no CI
    ignored = steering_monotonicity(grid, np.array([[0.3, 0.1]] * 3)[:, None], ["a", "b"])  # a policy that ignores w
    assert ignored["a"]["spearman"] is None and ignored["a"]["non_decreasing_steps"] == 1.0  # constant: undefined
    backwards = steering_monotonicity(grid, steered[::-1], ["a", "b"])
    assert backwards["a"]["spearman"] == pytest.approx(-1.0) and backwards["b"]["non_decreasing_steps"] == 0.0
    # K = 3: points sharing a level of w_i are averaged before the steps are counted
    grid3 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    s3 = steering_monotonicity(grid3, np.eye(3)[:, None], ["a", "b", "c"])
    assert s3["c"]["non_decreasing_steps"] == 1.0 and s3["c"]["spearman"] == pytest.approx(1.0)
    assert s3["c"]["gain"] == pytest.approx(1.0)  # 1 at w_c = 1 minus the mean of the two w_c = 0 points


def test_steering_gain_is_paired_on_prompts():
    # Two prompts of very different difficulty; asking for more of "a" adds 0.1 to each.
    grid = np.array([[0.0, 1.0], [1.0, 0.0]])
    rewards = np.array([[[-3.0, 0.0], [3.0, 0.0]], [[-2.9, 0.0], [3.1, 0.0]]])  # [G=2, P=2, K=2]
    s = steering_monotonicity(grid, rewards, ["a", "b"])
    assert s["a"]["gain"] == pytest.approx(0.1) and s["a"]["gain_ci95"] == pytest.approx(0.0, abs=1e-9)
    assert s["b"]["gain"] == pytest.approx(0.0)


def test_masked_means_are_over_the_items_each_objective_applies_to():
    # objective b applies to items 0 and 2 only (exact match on two problems among chat prompts); c to none
    nan = math.nan
    s = Scores.from_nan(torch.tensor([[1.0, 2.0, nan], [3.0, nan, nan], [5.0, 4.0, nan], [7.0, nan, nan]]))
    m = objective_means(s, ["a", "b", "c"])
    assert m["mean"] == {"a": 4.0, "b": 3.0, "c": None} and m["n"] == {"a": 4, "b": 2, "c": 0} and m["ci95"]["c"] is None
    assert [m["ci95"]["a"], m["ci95"]["b"]] == pytest.approx([mean_ci(torch.tensor([[1.0], [3.0], [5.0], [7.0]]))[1][0],
                                                             mean_ci(torch.tensor([[2.0], [4.0]]))[1][0]])
    assert set(objective_means(s[:1], ["a", "b", "c"])["ci95"].values()) == {None}  # one item: no CI, never NaN
    assert objective_means(torch.tensor([[1.0], [3.0]]), ["a"])["mean"] == {"a": 2.0}  # plain: every objective applies
    back = scores_from_lists(s.tolist())
    assert torch.equal(back.applies, s.applies) and torch.equal(back.filled(0.0), s.filled(0.0))


def test_steering_is_over_the_prompts_an_objective_applies_to():
    grid = np.array([[1.0, 0.0], [0.0, 1.0]])
    nan = math.nan
    # [G=2, P=3, K=2]: b applies to prompt 0 only (gain 1.0 there); the NaN of prompts 1, 2 must not leak
    rewards = Scores.from_nan(torch.tensor([[[0.5, -1.0], [0.2, nan], [0.1, nan]], [[0.0, 0.0], [0.1, nan], [0.0, nan]]]))
    s = steering_monotonicity(grid, rewards, ["a", "b"])
    assert s["b"]["gain"] == pytest.approx(1.0) and s["b"]["gain_ci95"] is None  # one prompt applies
    assert s["b"]["reward_at_lowest"] == pytest.approx(-1.0) and s["b"]["reward_at_highest"] == pytest.approx(0.0)
    assert s["b"]["spearman"] == pytest.approx(1.0) and s["b"]["non_decreasing_steps"] == 1.0
    assert s["a"]["gain"] == pytest.approx((0.5 + 0.1 + 0.1) / 3)
    none = steering_monotonicity(grid, Scores(rewards.values, rewards.applies & torch.tensor([True, False])), ["a", "b"])
    assert set(none["b"].values()) == {None}  # applies to no answer: every figure undefined, none NaN


def test_interference_is_the_paired_accuracy_gap_to_dpo_on_the_objective_alone():
    cell = lambda correct: {"accuracy": sum(correct) / len(correct), "correct": correct}
    mahalo = {"heldout_accuracy": {"helpful": {"helpful": cell([1, 0, 1, 0])}, "harmless": {"helpful": cell([0, 0, 0, 0])}}}
    alone = {"helpful": {"heldout_accuracy": {"helpful": {"helpful": cell([1, 1, 1, 0])}}}}
    out = interference(mahalo, alone)["helpful"]
    assert (out["head"], out["alone"], out["interference"]) == (0.5, 0.75, 0.25)
    T3 = 3.18245  # Student t, 3 degrees of freedom, 97.5%
    assert out["ci95"] == pytest.approx(T3 * 0.5 / 2, rel=1e-5)  # differences [0, 1, 0, 0]: std 0.5 over sqrt(4) pairs
    gaps = head_specialization(mahalo["heldout_accuracy"])  # own head on helpful pairs minus the harmless head
    assert gaps == {"helpful": {"harmless": {"mean": 0.5, "ci95": pytest.approx(T3 * math.sqrt(1 / 3) / 2, rel=1e-5)}}}
    alone["helpful"]["heldout_accuracy"]["helpful"]["helpful"] = cell([1, 1])
    with pytest.raises(DataError, match="helpful: held-out pairs differ \\(4 vs 2\\)"):
        interference(mahalo, alone)



def test_own_objective_scores_pick_each_prompts_source_objective():
    from preforch.evaluation.metrics import own_objective_scores

    scores = torch.tensor([[1.0, -1.0, 0.0], [2.0, 0.5, 0.0], [0.3, 0.3, 1.0]])
    sources = ["hh-helpful", "hh-harmless", "arithmetic"]
    assert own_objective_scores(scores, sources, ["helpful", "harmless", "arithmetic"]).tolist() == [1.0, 0.5, 1.0]
    with pytest.raises(DataError, match="'ultrafeedback' -> \\[\\]"):
        own_objective_scores(scores, ["hh-helpful", "ultrafeedback", "arithmetic"], ["helpful", "harmless", "arithmetic"])
    # exact match does not apply to the chat prompts: their own objectives still give their figures
    masked = Scores(scores, torch.tensor([[True, True, False], [True, True, False], [True, True, True]]))
    assert own_objective_scores(masked, sources, ["helpful", "harmless", "arithmetic"]).tolist() == [1.0, 0.5, 1.0]
    with pytest.raises(DataError, match="prompt 2 of source 'arithmetic': its objective 'arithmetic' does not apply"):
        own_objective_scores(Scores(scores, masked.applies.roll(1, 0)), sources, ["helpful", "harmless", "arithmetic"])
    # exact match does not apply to the chat prompts: their own objectives still give their figures
    masked = Scores(scores, torch.tensor([[True, True, False], [True, True, False], [True, True, True]]))
    assert own_objective_scores(masked, sources, ["helpful", "harmless", "arithmetic"]).tolist() == [1.0, 0.5, 1.0]
    with pytest.raises(DataError, match="prompt 2 of source 'arithmetic': its objective 'arithmetic' does not apply"):
        own_objective_scores(Scores(scores, masked.applies.roll(1, 0)), sources, ["helpful", "harmless", "arithmetic"])


def test_stratified_bootstrap_overall_is_the_mean_of_source_means():
    from preforch.evaluation.metrics import stratified_bootstrap

    # source a: 1, 3 (mean 2); source b: 10 (mean 10), one prompt: overall (2 + 10) / 2 = 6, not the prompt mean 14/3
    b = stratified_bootstrap([1.0, 3.0, 10.0], ["a", "a", "b"], num_samples=500)
    assert b["a"]["mean"] == 2.0 and b["b"]["mean"] == 10.0 and b["overall"]["mean"] == 6.0
    assert b["b"]["ci95"] == [10.0, 10.0] and 1.0 <= b["a"]["ci95"][0] <= b["a"]["ci95"][1] <= 3.0
    assert 5.0 <= b["overall"]["ci95"][0] <= 6.0 <= b["overall"]["ci95"][1] <= 6.5
    assert b["overall"]["n"] == 3 and b["a"]["n"] == 2
    # a constant paired difference is certain
    assert stratified_bootstrap([0.5] * 4, ["a", "b", "a", "b"])["overall"]["ci95"] == [0.5, 0.5]
