"""MOSLIM's mapping and losses (rewards/levels.py) on hand-made probabilities."""

import pytest
import torch

from preforch.rewards.levels import (MASKED, calibration_error, classification_loss, expected_level, fit_level_stats,
                                     head_probabilities, mapped_reward)

LEVELS = (2, 2, 5)


def _probs(n=16, seed=0):
    torch.manual_seed(seed)
    return head_probabilities(torch.randn(n, sum(LEVELS)), LEVELS)


def test_head_probabilities_are_padded_per_head_softmaxes():
    p = _probs()
    assert p.shape == (16, 3, 5)
    assert torch.allclose(p.sum(-1), torch.ones(16, 3))
    assert (p[:, :2, 2:] == 0).all()  # 2-level heads have no levels 2..4


@pytest.mark.parametrize("mapping", ["probability", "expected", "distance"])
def test_every_head_masked_gives_zero(mapping):
    p = _probs()
    reward, terms = mapped_reward(p, torch.full((16, 3), MASKED), fit_level_stats(p), LEVELS, mapping)
    assert torch.equal(reward, torch.zeros(16)) and torch.equal(terms, torch.zeros(16, 3))


def test_reward_rises_with_the_requested_levels_probability():
    stats = fit_level_stats(_probs(64))
    targets = torch.tensor([[MASKED, MASKED, 3]] * 5)
    p = torch.zeros(5, 3, 5)
    p[:, :2, :2] = 0.5
    for i, q in enumerate([0.1, 0.3, 0.5, 0.7, 0.9]):
        p[i, 2, 3], p[i, 2, 0] = q, 1 - q
    reward, _ = mapped_reward(p, targets, stats, LEVELS, "probability")
    assert (reward.diff() > 0).all()
    # Eq. 11 exactly: (p - mean) / std of that head and level; one named head, so k = 1
    assert reward[2].item() == pytest.approx(((0.5 - stats.mean[2, 3]) / stats.std[2, 3]).item())


def test_mapping_averages_over_named_heads_only():
    p = _probs(4)
    stats = fit_level_stats(_probs(64))
    one, terms = mapped_reward(p, torch.tensor([[1, MASKED, MASKED]] * 4), stats, LEVELS)
    two, terms2 = mapped_reward(p, torch.tensor([[1, 0, MASKED]] * 4), stats, LEVELS)
    assert torch.allclose(two, (terms2[:, 0] + terms2[:, 1]) / 2) and torch.allclose(one, terms[:, 0])


def test_distance_penalises_overshoot_and_expected_is_signed_toward_the_request():
    stats = fit_level_stats(_probs(64))
    p = torch.zeros(3, 3, 5)
    p[:, :2, 0] = 1
    for i, level in enumerate([1, 2, 4]):
        p[i, 2, level] = 1.0  # expected quality level 1, 2, 4
    ask_two = torch.tensor([[MASKED, MASKED, 2]] * 3)
    dist, _ = mapped_reward(p, ask_two, stats, LEVELS, "distance")
    assert dist[1] > dist[0] and dist[1] > dist[2]  # exact level best; overshoot by 2 worse than undershoot by 1
    up, _ = mapped_reward(p, torch.tensor([[MASKED, MASKED, 4]] * 3), stats, LEVELS, "expected")
    down, _ = mapped_reward(p, torch.tensor([[MASKED, MASKED, 0]] * 3), stats, LEVELS, "expected")
    assert (up.diff() > 0).all() and (down.diff() < 0).all()


def test_classification_loss_sums_heads_and_skips_masked_labels():
    logits = torch.randn(4, sum(LEVELS), requires_grad=True)
    labels = torch.tensor([[1, MASKED, MASKED], [0, MASKED, MASKED], [MASKED, MASKED, 4], [MASKED, MASKED, 2]])
    loss = classification_loss(logits, labels, LEVELS)
    ce = torch.nn.functional.cross_entropy
    expected = ce(logits[:2, :2], labels[:2, 0]) + ce(logits[2:, 4:], labels[2:, 2])
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert (logits.grad[:, 2:4] == 0).all()  # the harmless head had no label: no gradient


def test_expected_level_and_calibration_error():
    p = torch.tensor([[[0.0, 0.5, 0.5]]])
    assert expected_level(p).item() == pytest.approx(1.5)
    confident_right = torch.tensor([[0.9, 0.1]] * 10)
    assert calibration_error(confident_right, torch.zeros(10, dtype=torch.long)) == pytest.approx(0.1)
    assert calibration_error(confident_right, torch.ones(10, dtype=torch.long)) == pytest.approx(0.9)
