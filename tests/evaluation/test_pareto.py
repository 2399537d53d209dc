import numpy as np
import pytest

from preforch.errors import ConfigError, WeightsError
from preforch.evaluation.pareto import check_grid, hypervolume, pareto_mask, simplex_grid


def test_simplex_grid_sizes_and_rows():
    g2 = simplex_grid(2, 10)
    assert g2.shape == (11, 2) and g2[0].tolist() == [1.0, 0.0] and g2[-1].tolist() == [0.0, 1.0]
    g3 = simplex_grid(3, 4)
    assert g3.shape == (15, 3)  # C(4+2, 2)
    assert np.allclose(g3.sum(1), 1.0) and (g3 >= 0).all()


def test_front_extraction_by_hand():
    pts = np.array([[1, 5], [2, 4], [3, 3], [2, 2], [0, 6], [3, 1]], dtype=float)
    assert pareto_mask(pts).tolist() == [True, True, True, False, True, False]
    assert pareto_mask(np.array([[1.0, 1.0, 1.0]])).tolist() == [True]


def test_hypervolume_matches_hand_computed_values():
    # 2-D staircase: (3,1),(2,2),(1,3) over ref (0,0): 3*1 + 2*1 + 1*1 = 6
    assert hypervolume(np.array([[3, 1], [2, 2], [1, 3]], dtype=float), [0, 0]) == pytest.approx(6.0)
    # dominated points and points outside the reference box add nothing
    assert hypervolume(np.array([[3, 1], [2, 2], [1, 3], [1, 1], [-1, 9]], dtype=float), [0, 0]) == pytest.approx(6.0)
    # 3-D: boxes (2,1,1) and (1,2,1) from the origin overlap in a unit cube: 2 + 2 - 1 = 3
    assert hypervolume(np.array([[2, 1, 1], [1, 2, 1]], dtype=float), [0, 0, 0]) == pytest.approx(3.0)
    # negative coordinates (z-scored rewards) with a negative reference point
    assert hypervolume(np.array([[-0.5, 0.5]]), [-1, -1]) == pytest.approx(0.5 * 1.5)
    with pytest.warns(UserWarning, match=r"reference point \[-1.0, -1.0\] is not dominated by any of the 1 points"):
        assert hypervolume(np.array([[-2.0, -2.0]]), [-1, -1]) == 0.0  # said: 0 here is the reference point's doing


def test_reference_point_errors():
    with pytest.raises(ConfigError, match="needs a reference point"):
        hypervolume(np.ones((2, 2)), None)
    with pytest.raises(ConfigError, match="reference_point: expected 2 values"):
        hypervolume(np.ones((2, 2)), [0, 0, 0])


def test_grid_validation():
    with pytest.raises(WeightsError, match="row 1 .* not on the simplex"):
        check_grid(np.array([[0.5, 0.5], [0.7, 0.2]]), ["a", "b"])
    with pytest.raises(WeightsError, match="expected rows of 2 weights"):
        check_grid(np.array([[1.0, 0.0, 0.0]]), ["a", "b"])
