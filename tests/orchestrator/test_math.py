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


def test_last_pool_takes_the_last_unpadded_token_on_either_padding_side():
    h = torch.tensor([[[1.0], [3.0], [100.0]], [[7.0], [5.0], [9.0]]])
    assert pool(h, torch.tensor([[1, 1, 0], [0, 1, 1]]), "last").flatten().tolist() == [3.0, 9.0]


def test_gate_objective_softmaxes_over_objectives_and_trains():
    from preforch.orchestrator.losses import combined_bradley_terry_loss, orchestrator_loss

    # Two prompts, K = 3; a softmax over the batch axis (ArmoRM's public bug) would give a different loss.
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    delta = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    w = torch.softmax(logits, -1)
    expected = -torch.nn.functional.logsigmoid((w * delta).sum(-1)).mean()
    assert combined_bradley_terry_loss(logits, delta).item() == pytest.approx(expected.item())
    wrong_axis = torch.softmax(logits, 0)
    assert combined_bradley_terry_loss(logits, delta).item() != pytest.approx(
        -torch.nn.functional.logsigmoid((wrong_axis * delta).sum(-1)).mean().item())
    # Gradient descent on the gate loss moves weight toward the objective that agrees with the label.
    head = torch.zeros(2, 3, requires_grad=True)
    opt = torch.optim.SGD([head], lr=1.0)
    first = None
    for _ in range(50):
        loss = orchestrator_loss("bradley-terry", head, torch.full((2, 3), 1 / 3), delta)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    final = torch.softmax(head.detach(), -1)
    assert final[0, 0] > 0.5 and final[1, 2] > 0.5
    with pytest.raises(ValueError, match="objective: expected one of"):
        orchestrator_loss("mse", head, head, head)
