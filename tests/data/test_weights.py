import math

import pytest
import torch

from preforch.data.weights import (PartialPreference, check_simplex, fill_preference, format_weights, parse_preference,
                                   parse_weights, random_simplex)
from preforch.errors import WeightsError

OBJ = ("helpful", "harmless", "conciseness")


def test_parse_orders_by_objectives_and_fills_zeros():
    w = parse_weights("harmless=0.3, helpful=0.7", OBJ)
    assert torch.allclose(w, torch.tensor([0.7, 0.3, 0.0]))
    assert parse_weights(format_weights(w, OBJ), OBJ).tolist() == pytest.approx(w.tolist())


@pytest.mark.parametrize("spec, message", [
    ("helpful=0.7,harmless=0.2", "must sum to 1"),
    ("helpful=0.5,kind=0.5", "unknown objective 'kind'"),
    ("helpful=nan,harmless=1", "NaN"),
    ("helpful=1.5,harmless=-0.5", "non-negative"),
    ("helpful", "expected name=value"),
    ("helpful=abc", "not a number"),
    ("helpful=0.5,helpful=0.5", "given twice"),
    ("", "empty"),
])
def test_bad_specs_are_rejected_with_reason(spec, message):
    with pytest.raises(WeightsError, match=message):
        parse_weights(spec, OBJ)


def test_check_simplex_shapes_and_values():
    assert check_simplex(torch.tensor([[0.2, 0.3, 0.5]] * 4), OBJ).shape == (4, 3)
    with pytest.raises(WeightsError, match="expected 3 weights"):
        check_simplex(torch.tensor([0.5, 0.5]), OBJ)
    with pytest.raises(WeightsError, match="NaN or inf"):
        check_simplex(torch.tensor([math.inf, 0.0, 0.0]), OBJ)


def test_parse_preference_fixed_part_and_auto():
    assert parse_preference("harmless=0.5, auto", OBJ) == PartialPreference({"harmless": 0.5}, auto=True)
    assert parse_preference("auto", OBJ) == PartialPreference({}, auto=True)
    assert parse_preference("helpful=0.7,harmless=0.3", OBJ) == PartialPreference({"helpful": 0.7, "harmless": 0.3})
    # every objective fixed on the simplex: auto has nothing to do, and that is fine
    assert parse_preference("helpful=0.5,harmless=0.5,conciseness=0,auto", OBJ).auto
    assert parse_preference("harmless=0.5,auto", OBJ).fixed_vector(OBJ).tolist() == [0.0, 0.5, 0.0]


@pytest.mark.parametrize("spec, message", [
    ("helpful=0.7,harmless=0.5,auto", r"^--weights: fixed weights sum to 1\.2, more than 1"),
    ("helpful=0.7,harmless=0.5", r"^--weights: fixed weights sum to 1\.2"),
    ("harmless=0.5,kind=0.1,auto", r"^--weights: unknown objective 'kind'"),
    ("auto,harmless=0.2,auto", r"^--weights: 'auto' given twice"),
    ("harmless=-0.1,auto", r"^--weights: weights must be non-negative, got \{'harmless': -0\.1\}"),
    ("helpful=0.7,harmless=0.2", r"^--weights: weights must sum to 1"),
    ("helpful=0.2,harmless=0.2,conciseness=0.2,auto", r"^--weights: 'auto' has nothing to fill: .* sum to 0\.6 < 1"),
])
def test_parse_preference_errors(spec, message):
    with pytest.raises(WeightsError, match=message):
        parse_preference(spec, OBJ)


def test_errors_name_the_caller_and_parse_weights_needs_a_full_vector():
    with pytest.raises(WeightsError, match=r"^recipe weights: fixed weights sum to 1\.5"):
        parse_preference("helpful=1,harmless=0.5,auto", OBJ, where="recipe weights")
    with pytest.raises(WeightsError, match="'auto' needs the orchestrator"):
        parse_weights("harmless=0.5,auto", OBJ)


def test_fill_preference_by_hand():
    objectives = ("a", "b", "c")
    filled = fill_preference(parse_preference("b=0.5,auto", objectives), torch.tensor([[0.6, 0.3, 0.1]]), objectives)
    assert filled[0].tolist() == pytest.approx([0.5 * 0.6 / 0.7, 0.5, 0.5 * 0.1 / 0.7])
    assert filled[0, 1].item() == 0.5  # the user's weight is kept exactly
    # the orchestrator puts everything on the fixed objective: the rest is split evenly among the free ones
    even = fill_preference(parse_preference("a=0.4,auto", objectives), torch.tensor([[1.0, 0.0, 0.0]]), objectives)
    assert even[0].tolist() == pytest.approx([0.4, 0.3, 0.3])
    # without auto the spec is the whole vector; auto alone is the orchestrator's
    o = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])
    assert fill_preference(parse_preference("a=1", objectives), o, objectives).tolist() == [[1.0, 0.0, 0.0]] * 2
    assert torch.allclose(fill_preference(parse_preference("auto", objectives), o, objectives), o)


@pytest.mark.parametrize("spec", ["auto", "harmless=0.3,auto", "helpful=0.25,conciseness=0.75,auto",
                                  "helpful=0.5,harmless=0.5,auto", "conciseness=1,auto"])
def test_filled_rows_stay_on_the_simplex(spec):
    torch.manual_seed(0)
    o = torch.softmax(8 * torch.randn(200, 3), -1)  # peaked rows, some with ~0 weight on every free objective
    pref = parse_preference(spec, OBJ)
    filled = fill_preference(pref, o, OBJ)
    check_simplex(filled, OBJ)
    for name, value in pref.fixed.items():
        assert (filled[:, OBJ.index(name)] == value).all()


def test_random_simplex_is_seeded_and_on_the_simplex():
    w = random_simplex(50, 3, seed=1)
    assert torch.allclose(w.sum(-1), torch.ones(50)) and (w > 0).all()
    assert torch.equal(w, random_simplex(50, 3, seed=1))
