"""Held-out prompts that are really held out: splits by the first human turn (issue 38)."""

import pytest

from preforch.data.loaders import load_preferences
from preforch.data.schema import PreferenceDataset, PreferencePair, content_key, validation_split
from preforch.data.splits import first_turn_key, shared_first_turns, split_by_first_turn
from preforch.errors import ConfigError

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
