import pytest

from preforch.alignment.config import MahaloConfig
from preforch.alignment.verifiable_pairs import pairs_from_samples
from preforch.data.arithmetic import check, extract_answer, make_problems
from preforch.errors import ConfigError


@pytest.mark.parametrize("level", ["one-step", "two-step"])
def test_problems_are_seeded_and_their_answers_integral(level):
    a, b = make_problems(50, seed=1, level=level), make_problems(50, seed=1, level=level)
    assert a == b and a != make_problems(50, seed=2, level=level)
    assert all(isinstance(p.answer, int) and p.answer >= 0 for p in a)
    assert all("Answer: N" in p.prompt[-1]["content"] for p in a)


def test_an_unknown_level_is_refused_by_name():
    with pytest.raises(ConfigError, match="arithmetic level 'three-step': expected one of"):
        make_problems(1, seed=0, level="three-step")
    with pytest.raises(ConfigError, match="arithmetic_level: expected one of one-step, two-step"):
        MahaloConfig(arithmetic_level="hard")


def test_the_checker_reads_the_final_answer_exactly():
    assert extract_answer("3 + 4 = 7, minus 2 is 5.\nAnswer: 5") == 5
    assert extract_answer("First 12, then 1,250 in all") == 1250
    assert extract_answer("no number") is None
    assert check("so 9 apples. Answer: 9", 9) and not check("Answer: 19", 9) and not check("Answer: 9.5 or 10", 10)


def test_pairs_choose_a_correct_sample_over_a_wrong_one():
    problems = make_problems(3, seed=0)
    samples = [[f"Answer: {problems[0].answer + 1}", f"Answer: {problems[0].answer}"],
               [f"Answer: {problems[1].answer}"] * 2,  # all right: no pair
               ["no idea", f"Answer: {problems[2].answer}"]]
    pairs = pairs_from_samples(problems, samples)
    assert len(pairs) == 2 and all(check(p.chosen, pr.answer) and not check(p.rejected, pr.answer)
                                   for p, pr in zip(pairs, [problems[0], problems[2]]))


def test_the_answer_is_read_back_from_the_problem_text_so_a_rule_can_judge():
    from preforch.data.arithmetic import exact_match, solve
    from preforch.rewards.sources import RuleReward

    problems = make_problems(200, seed=5) + make_problems(200, seed=5, level="one-step")
    assert all(solve(p.prompt[-1]["content"]) == p.answer for p in problems) and solve("How do I bake bread?") is None
    rule = RuleReward.from_spec("arithmetic=preforch.data.arithmetic:exact_match")
    scores = rule.score([problems[0].prompt, problems[0].prompt, ({"role": "user", "content": "hi"},)],
                        [f"Answer: {problems[0].answer}", f"Answer: {problems[0].answer + 1}", "Answer: 1"])
    assert rule.objectives == ("arithmetic",) and scores[:2, 0].tolist() == [1.0, 0.0] and scores[2, 0].isnan()
    assert exact_match(["x"], ["y"]) == [None]  # no problem: not applicable, never "wrong"


def test_the_right_answer_comes_from_a_dataset_column_when_there_is_one():
    from preforch.data.arithmetic import exact_match

    prompts = ["How many legs do 3 spiders have?"] * 4  # no bundled template: only the column can judge it
    replies = ["Answer: 24", "Answer: 25", "24", "no idea"]
    assert exact_match(prompts, replies) == [None] * 4
    assert exact_match(prompts, replies, solution=[24, 24, "#### 24", "24"]) == [1.0, 0.0, 1.0, 0.0]  # GSM8K's form
    assert exact_match(prompts, replies, answer=["24", "24", None, "unknown"]) == [1.0, 0.0, None, None]
    with pytest.raises(ConfigError, match="2 answers for 4 completions"):
        exact_match(prompts, replies, solution=[1, 2])
