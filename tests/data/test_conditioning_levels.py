"""The MOSLIM `<levels ...>` tag: round trip, masking, errors, and the PRO + MOSLIM rule."""

import pytest
import torch

from preforch.data.conditioning import MASKED, has_tag, levels_from_weights, parse, render
from preforch.errors import WeightsError

HEADS, COUNTS = ("helpful", "harmless", "quality"), (2, 2, 5)
PROMPT = ({"role": "system", "content": "be brief"}, {"role": "user", "content": "How do I bake bread?"})


@pytest.mark.parametrize("levels", [[1, 1, 4], [0, MASKED, MASKED], [MASKED, 1, 2]])
def test_levels_round_trip_and_masked_objectives_are_left_out(levels):
    tagged = render(PROMPT, torch.tensor(levels), HEADS, "levels", COUNTS)
    line = tagged[-1]["content"].split("\n")[0]
    assert line == "<levels " + " ".join(f"{o}={v}" for o, v in zip(HEADS, levels) if v != MASKED) + ">"
    assert has_tag(tagged) and tagged[0] == PROMPT[0]
    kind, back, untagged = parse(tagged, HEADS, COUNTS)
    assert kind == "levels" and back.tolist() == levels and untagged == PROMPT


def test_hand_written_tag_in_any_order_parses():
    kind, levels, rest = parse("<levels quality=3 helpful=0>\nhi", HEADS, COUNTS)
    assert levels.tolist() == [0, MASKED, 3] and rest[-1]["content"] == "hi"


@pytest.mark.parametrize("text, message", [
    ("<levels quality=5>\nhi", r"level 5 of 'quality' is outside its range 0..4"),
    ("<levels helpful=-2>\nhi", r"level -2 of 'helpful' is outside its range 0..1"),
    ("<levels kindness=1>\nhi", r"unknown objective 'kindness'"),
    ("<levels helpful=0.5>\nhi", r"levels must be whole numbers"),
    ("<levels helpful=1 helpful=0>\nhi", r"'helpful' given twice"),
    ("<levels>\nhi", r"name at least one objective"),
    ("<levels helpful=1 hi", r"malformed conditioning tag"),
])
def test_bad_tags_say_what_is_wrong(text, message):
    with pytest.raises(WeightsError, match=message):
        parse(text, HEADS, COUNTS)


def test_rendering_refuses_out_of_range_or_empty_levels():
    with pytest.raises(WeightsError, match="outside its range 0..1"):
        render(PROMPT, torch.tensor([2, MASKED, MASKED]), HEADS, "levels", COUNTS)
    with pytest.raises(WeightsError, match="name at least one"):
        render(PROMPT, torch.full((3,), MASKED), HEADS, "levels", COUNTS)


def test_pro_moslim_rule_names_objectives_at_or_above_their_uniform_share():
    w = torch.tensor([[0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3], [0.2, 0.2, 0.6], [0.34, 0.33, 0.33]])
    assert levels_from_weights(w, COUNTS).tolist() == [[1, MASKED, MASKED], [1, 1, 4], [MASKED, MASKED, 4],
                                                      [1, MASKED, MASKED]]
    with pytest.raises(WeightsError, match="sum to 1"):
        levels_from_weights(torch.tensor([0.5, 0.2, 0.2]), COUNTS)
