import pytest
import torch

from preforch.errors import PreforchError
from preforch.orchestrator.metrics import kl_against_baselines, source_auroc, top_objective_calibration


def test_source_auroc_perfect_inverse_and_chance():
    w = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9]])
    out = source_auroc(w, ["a", "a", "b", "b"], "b", ["x", "y"])
    assert out == {"x": 0.0, "y": 1.0}
    flat = source_auroc(torch.full((4, 2), 0.5), ["a", "a", "b", "b"], "b", ["x", "y"])
    assert flat["x"] == pytest.approx(0.5)
    with pytest.raises(PreforchError, match="needs prompts from source"):
        source_auroc(w, ["a"] * 4, "b", ["x", "y"])


def test_kl_baselines_rank_a_perfect_predictor_first():
    targets = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    out = kl_against_baselines(targets, targets, targets)
    assert out["orchestrator"] == pytest.approx(0.0, abs=1e-6)
    assert out["uniform"] == pytest.approx(out["constant_mean_target"]) and out["uniform"] > 0.3


def test_top_objective_calibration_by_hand():
    pred = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    targ = torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.7, 0.3], [0.6, 0.4]])
    cal = top_objective_calibration(pred, targ, num_bins=2)  # bins [0.5, 0.75), [0.75, 1]
    assert cal["top1_agreement"] == pytest.approx(0.75)
    assert [b["count"] for b in cal["bins"]] == [2, 2]
    assert cal["bins"][1]["accuracy"] == pytest.approx(0.5) and cal["bins"][1]["confidence"] == pytest.approx(0.9)
    assert cal["ece"] == pytest.approx(0.5 * abs(1.0 - 0.6) + 0.5 * abs(0.5 - 0.9))
