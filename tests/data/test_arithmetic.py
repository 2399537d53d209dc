import re

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


def _training_triples() -> set:
    from preforch.data.arithmetic import problem_triple
    from preforch.data.loaders import load_preferences

    return {problem_triple(p.prompt) for p in load_preferences("arithmetic-smollm2:train")}


def test_the_bundled_held_out_problems_mostly_repeat_a_training_triple():
    from preforch.data.arithmetic import one_step_triples, problem_triple
    from preforch.data.loaders import load_preferences

    trained = _training_triples()
    assert len(trained) == 273 and trained <= set(one_step_triples(30)) and len(one_step_triples(30)) == 457
    train_texts = {p.prompt_text for p in load_preferences("arithmetic-smollm2:train")}
    held_out = {p.prompt_text for p in load_preferences("arithmetic-smollm2:test")} - train_texts
    # measured: of the 277 test problems whose text no training problem has, 160 ask a training problem's triple
    assert len(held_out) == 277 and sum(problem_triple(t) in trained for t in held_out) == 160


def test_a_triple_is_read_from_any_phrasing_and_a_two_step_problem_has_none():
    from preforch.data.arithmetic import problem_triple

    assert problem_triple("What is 12 + 5? Give the final number on a last line as 'Answer: N'.") == ("+", 12, 5)
    assert problem_triple([{"role": "user", "content": "Subtract 5 from 12. End with 'The answer is N.'"}]) == \
        ("-", 12, 5)
    assert problem_triple(make_problems(1, seed=0)[0].prompt) is None and problem_triple("Bake bread?") is None


@pytest.mark.parametrize("phrasing", ["trained", "fresh", "mixed"])
def test_fresh_problems_ask_no_training_triple_and_are_seeded(phrasing):
    from preforch.data.arithmetic import make_fresh_problems, problem_triple

    trained = _training_triples()
    problems = make_fresh_problems(300, seed=3, exclude=trained, phrasing=phrasing)
    triples = [problem_triple(p.prompt) for p in problems]
    assert len(set(triples)) == 300 and not set(triples) & trained
    assert problems == make_fresh_problems(300, seed=3, exclude=trained, phrasing=phrasing)
    assert problems != make_fresh_problems(300, seed=4, exclude=trained, phrasing=phrasing)
    in_training_form = ["'Answer: N'" in p.prompt[-1]["content"] for p in problems]
    assert sum(in_training_form) == {"trained": 300, "fresh": 0, "mixed": 150}[phrasing]


def test_fresh_phrasings_use_no_training_wording_and_exact_match_judges_them():
    from preforch.data.arithmetic import LEVELS, exact_match, make_fresh_problems, solve

    problems = make_fresh_problems(200, seed=0, phrasing="fresh")
    texts = [p.prompt[-1]["content"] for p in problems]
    # the longest literal stretch of each training template ("What is ", " more. How many ", ...) and instruction
    training_words = {max(re.split(r"\{\w\}", t), key=len) for _, ts in LEVELS.values() for t, _ in ts}
    training_words |= {instruction for instruction, _ in LEVELS.values()}
    assert not any(w in t for w in training_words for t in texts)
    assert all(solve(t) == p.answer for t, p in zip(texts, problems))
    assert {"Result:" in t for t in texts} == {True, False}  # both answer instructions occur
    replies = [f"Result: {p.answer} (I worked it out.)" if "Result:" in t
               else f"So {p.answer}. The answer is {p.answer}." for t, p in zip(texts, problems)]
    wrong = [r.replace(str(p.answer), str(p.answer + 1)) for r, p in zip(replies, problems)]
    assert exact_match([p.prompt for p in problems], replies) == [1.0] * 200
    assert exact_match([p.prompt for p in problems], wrong) == [0.0] * 200


def test_the_checker_reads_the_fresh_answer_forms_and_the_bundled_pairs_as_before():
    from preforch.data.arithmetic import solve
    from preforch.data.loaders import load_preferences

    assert extract_answer("12 plus 5 is 17.\nResult: 17 (12 + 5)") == 17
    assert extract_answer("12 + 5 = 17. The answer is 17.") == 17
    assert extract_answer("16 + 8 = 24\nResult: N") == 24  # an echoed instruction is no answer marker
    for split in ("train", "test"):  # every bundled pair keeps its label: a right reply over a wrong one
        for p in load_preferences(f"arithmetic-smollm2:{split}"):
            answer = solve(p.prompt_text)
            assert check(p.chosen, answer) and not check(p.rejected, answer), p


def test_too_many_fresh_problems_or_an_unknown_phrasing_are_refused():
    from preforch.data.arithmetic import make_fresh_problems

    with pytest.raises(ConfigError, match="only 354 one-step triples"):
        make_fresh_problems(355, seed=0, exclude=_training_triples())
    with pytest.raises(ConfigError, match="arithmetic phrasing 'odd': expected one of"):
        make_fresh_problems(1, seed=0, phrasing="odd")


def test_a_data_spec_names_fresh_problems_held_out_from_the_bundled_training_problems():
    from preforch.data.arithmetic import problem_triple, solve
    from preforch.data.loaders import load_preferences
    from preforch.errors import DataError

    data = load_preferences("arithmetic-fresh:mixed:200")
    assert len(data) == 200 and set(data.sources) == {"arithmetic"}
    assert not {problem_triple(p.prompt) for p in data} & _training_triples()
    assert all(check(p.chosen, solve(p.prompt_text)) and not check(p.rejected, solve(p.prompt_text)) for p in data)
    assert load_preferences("arithmetic-fresh:mixed:200:0").pairs == data.pairs
    assert load_preferences("arithmetic-fresh:fresh:200:5").pairs != \
        load_preferences("arithmetic-fresh:fresh:200").pairs
    assert len(load_preferences("arithmetic-fresh:fresh:50", limit=10)) == 10
    with pytest.raises(DataError, match="expected arithmetic-fresh:<phrasing>:<n>"):
        load_preferences("arithmetic-fresh:fresh")

