import pytest
import torch

from preforch.orchestrator.losses import kl_per_prompt, orchestrator_kl_loss
from preforch.modeling import pool
from preforch.orchestrator.targets import implicit_preference_weights


def test_targets_are_softmax_on_the_simplex_and_tau_sharpens():
    z = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    w = implicit_preference_weights(z, tau=1.0)
    assert torch.allclose(w.sum(-1), torch.ones(2)) and (w >= 0).all()
    assert torch.allclose(w[1], torch.full((3,), 1 / 3))
    sharp = implicit_preference_weights(z, tau=0.25)
    assert sharp[0, 0] > w[0, 0]
    with pytest.raises(ValueError, match="tau"):
        implicit_preference_weights(z, tau=0)


def test_kl_loss_zero_at_target_positive_elsewhere():
    targets = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    assert orchestrator_kl_loss(targets.log(), targets).item() == pytest.approx(0.0, abs=1e-6)
    assert orchestrator_kl_loss(torch.zeros(2, 2), targets).item() > 0
    per = kl_per_prompt(torch.full((2, 2), 0.5), targets)
    assert per.shape == (2,) and per.mean().item() == pytest.approx(orchestrator_kl_loss(torch.zeros(2, 2), targets).item(), rel=1e-5)


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert pool(h, torch.tensor([[1, 1, 0]]), "mean").item() == 2.0
    assert pool(h, torch.tensor([[1, 1, 0]]), "cls").item() == 1.0
