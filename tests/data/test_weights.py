import math

import pytest
import torch

from preforch.data.weights import check_simplex, format_weights, parse_weights
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
