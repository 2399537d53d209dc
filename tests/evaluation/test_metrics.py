import pytest
import torch

from preforch.errors import PreforchError
from preforch.evaluation.metrics import kl_against_baselines, source_auroc


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
