"""A TRL reward function used unchanged as a rule, and the built-in rules under TRL's call convention."""

import math

import pytest

from preforch.rewards.rules import conciseness
from preforch.rewards.sources import RuleReward

trl_rewards = pytest.importorskip("trl.rewards")

PROMPTS = [({"role": "user", "content": "What is 2 + 3? Answer: N"},)] * 2


def test_trl_reward_function_is_a_rule():
    rule = RuleReward.from_spec("format=trl.rewards:think_format_reward")
    scores = rule.score(PROMPTS, ["<think>\nhm\n</think>\nAnswer: 5", "Answer: 5"])
    assert rule.objectives == ("format",)
    assert scores.squeeze(-1).tolist() == [1.0, 0.0]


def test_builtin_rules_same_numbers_as_before():
    replies = ["short", "a much longer reply than that"]
    expected = [-math.log1p(1), -math.log1p(6)]  # the old positional (prompts, responses) values
    assert RuleReward.from_spec("conciseness").score(PROMPTS, replies).squeeze(-1).tolist() == pytest.approx(expected)
    assert conciseness(["q"] * 2, replies) == pytest.approx(expected)  # TRL's standard (string) format too
    em = RuleReward.from_spec("arithmetic=preforch.data.arithmetic:exact_match").score(PROMPTS, ["Answer: 5", "4"])
    assert em.squeeze(-1).tolist() == [1.0, 0.0]


def test_none_means_not_applicable():
    rule = RuleReward.from_spec("na=tests.rewards.test_trl_rule:_half_applicable")
    assert math.isnan(rule.score(PROMPTS, ["a", "b"])[1, 0].item())


def _half_applicable(prompts, completions, **kwargs):
    return [1.0] + [None] * (len(completions) - 1)


def returns_strings(prompts, completions, **kwargs):
    return ["good" for _ in completions]


def wrong_signature(texts):
    return [1.0 for _ in texts]


@pytest.mark.parametrize("rule, message", [
    ("tests.rewards.test_trl_rule:returns_strings", "returned 'good'; a rule returns numbers, or None"),
    ("tests.rewards.test_trl_rule:wrong_signature", "TRL's reward-function signature"),
])
def test_a_rule_that_breaks_the_contract_is_one_line_naming_it(rule, message):
    from preforch.errors import ConfigError

    with pytest.raises(ConfigError, match=f"^rule '{rule}'.*{message}"):
        RuleReward("x", rule).score([({"role": "user", "content": "hi"},)], ["hello"])
