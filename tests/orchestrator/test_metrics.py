import math

import numpy as np
import pytest
import torch

from preforch.errors import PreforchError
from preforch.orchestrator.metrics import kl_against_baselines, source_auroc, top_objective_calibration, weight_entropy


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


def test_weight_entropy_in_nats_by_source():
    w = np.array([[2.0, 2.0], [1.0, 0.0], [0.25, 0.75]])  # the first row is renormalised to uniform
    e = weight_entropy(w, ["x", "y", "y"])
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))  # 0.5623; the one-hot row has 0
    assert e["x"] == {"mean": pytest.approx(math.log(2)), "sd": None}
    assert e["y"] == {"mean": pytest.approx(h / 2), "sd": pytest.approx(h / math.sqrt(2))}


def test_sharpness_lower_temperatures_give_lower_entropy_per_source():
    from preforch.orchestrator.calibration import tempered_weights
    from preforch.orchestrator.evaluate import sharpness

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    out = sharpness({f"T {t}": tempered_weights(logits, t) for t in (0.25, 1.0)}, targets, ["a", "b", "b"], ["x", "y"])
    assert out["T 0.25"]["entropy"]["a"]["mean"] < out["T 1.0"]["entropy"]["a"]["mean"]
    assert out["T 1.0"]["mean_weights_by_source"]["a"]["x"] == pytest.approx(torch.tensor([2.0, 0.0]).softmax(0)[0].item())
    assert out["T 0.25"]["kl_to_targets"] > 0
