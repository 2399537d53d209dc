"""Held-out prompts that are really held out: splits by the first human turn (issue 38)."""

import json

import pytest

from preforch.data.loaders import check_disjoint_prompts, load_preferences
from preforch.data.schema import PreferenceDataset, PreferencePair, content_key, validation_split
from preforch.data.splits import first_turn_key, shared_first_turns, split_by_first_turn
from preforch.errors import ConfigError, DataError

HH_TRAIN, HH_TEST = "hh-helpful:train+hh-harmless:train", "hh-helpful:test+hh-harmless:test"


def _pair(*turns: str) -> PreferencePair:
    roles = ["user", "assistant"] * len(turns)
    return PreferencePair(tuple({"role": r, "content": t} for r, t in zip(roles, turns)), "yes", "no", "x")


def _keys(data: PreferenceDataset) -> set[str]:
    return {content_key(p.prompt) for p in data}


def test_the_key_is_the_first_human_turn_normalised():
    assert first_turn_key(_pair("  How do I\n fry   FISH?", "Hot oil.", "And chips?").prompt) == "how do i fry fish?"
    assert first_turn_key(({"role": "system", "content": "be kind"}, {"role": "user", "content": "Hi"})) == "hi"


@pytest.mark.filterwarnings("ignore:skipped")
def test_bundled_hh_test_prompts_share_first_turns_with_training_and_among_themselves():
    train, test = load_preferences(HH_TRAIN), load_preferences(HH_TEST)
    shared = shared_first_turns(train, test)
    # measured: 80 of the 1,000 test pairs open like a training pair (hh-helpful 47, hh-harmless 33)
    assert sum(first_turn_key(p.prompt) in shared for p in test) == 80
    # and a content-hash split of the test pairs alone leaves families on both sides
    heldin, heldout = validation_split(test, 0.5)
    assert shared_first_turns(test.subset(heldin), test.subset(heldout))


@pytest.mark.filterwarnings("ignore:skipped")
def test_the_split_of_the_bundled_hh_test_pairs_shares_no_first_turn():
    test = load_preferences(HH_TEST)
    a, b = split_by_first_turn(test, 0.5, seed=0)
    assert len(a) + len(b) == len(test) and 400 < len(b) < 600
    assert shared_first_turns(a, b) == set()


def test_a_family_stays_together_and_the_split_is_stable_by_seed():
    data = PreferenceDataset([_pair(f"Question {i}?", "An answer.", f"Follow-up {j}?") for i in range(40)
                              for j in range(3)] + [_pair("question 0?")])
    a, b = split_by_first_turn(data, 0.3, seed=7)
    assert shared_first_turns(a, b) == set() and len(a) and len(b)
    again = split_by_first_turn(data.shuffled(1), 0.3, seed=7)  # order does not matter, only key and seed
    assert _keys(again[1]) == _keys(b) and _keys(split_by_first_turn(data, 0.3, seed=8)[1]) != _keys(b)


def test_a_fraction_outside_zero_to_one_is_refused():
    with pytest.raises(ConfigError, match="strictly between 0 and 1, got 1"):
        split_by_first_turn(PreferenceDataset([_pair("Hi")]), 1, seed=0)


@pytest.mark.filterwarnings("ignore:skipped")
def test_a_spec_ending_in_judge_or_eval_is_that_half_of_its_split_by_first_turn():
    a, b = split_by_first_turn(load_preferences("hh-helpful:test"), 0.5, seed=0)
    assert load_preferences("hh-helpful:test#judge").pairs == a.pairs
    assert load_preferences("hh-helpful:test#eval").pairs == b.pairs
    assert load_preferences("hh-helpful:test#eval", limit=5).pairs == b.pairs[:5]
    # a first turn found in both HH sets falls in the same half of each, so the joined halves stay apart
    check_disjoint_prompts(["hh-helpful:test#judge", "hh-harmless:test#judge"],
                           ["hh-helpful:test#eval+hh-harmless:test#eval", "arithmetic-fresh:mixed:20"], "judge_train_data")
    with pytest.raises(DataError, match="unknown half 'half'; expected hh-helpful:test#judge or hh-helpful:test#eval"):
        load_preferences("hh-helpful:test#half")


def test_a_file_whose_name_holds_a_hash_loads_as_that_file(tmp_path):
    f = tmp_path / "pairs#judge.jsonl"
    f.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello.", "rejected": "Go away."}) + "\n")
    assert len(load_preferences(str(f))) == 1


def test_a_judge_sharing_a_first_turn_with_the_evaluation_is_refused_in_one_line(tmp_path):
    judge, held = tmp_path / "judge.jsonl", tmp_path / "eval.jsonl"
    judge.write_text("".join(json.dumps({"prompt": p, "chosen": "a", "rejected": "b"}) + "\n"
                             for p in ("How do I fry fish?", "Hi")))
    follow_up = [{"role": "user", "content": " how do I  fry FISH?"}, {"role": "assistant", "content": "Hot oil."},
                 {"role": "user", "content": "And chips?"}]
    held.write_text("".join(json.dumps({"prompt": p, "chosen": "a", "rejected": "b"}) + "\n"
                            for p in (follow_up, "Something else")))
    with pytest.raises(ConfigError) as e:
        check_disjoint_prompts([str(judge)], [str(held)], "judge_train_data")
    assert str(e.value).startswith("judge_train_data: the judge's training data") and "\n" not in str(e.value)
    assert "shares 1 first human turn(s)" in str(e.value) and "'how do i fry fish?'" in str(e.value)
