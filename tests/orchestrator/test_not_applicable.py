"""The orchestrator's targets, losses and human-label tables skip an objective that does not apply (issue 37)."""

import json

import pytest
import torch
import torch.nn.functional as F

from preforch.data.arithmetic import make_problems
from preforch.data.schema import PreferenceDataset, PreferencePair
from preforch.orchestrator.human_labels import (best_fixed_weights, human_label_table, preference_accuracy,
                                                source_objective_accuracy)
from preforch.orchestrator.losses import combined_bradley_terry_loss, orchestrator_loss
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.scores import Scores
from preforch.rewards.sources import RuleReward
from tests.conftest import make_pairs

NA = float("nan")
OBJECTIVES = ["helpful", "harmless", "arithmetic"]
# Four pairs, chosen-minus-rejected; arithmetic applies to the third pair only (the others are no problem).
DELTA = Scores.from_nan(torch.tensor([[1.0, -2.0, NA],     # helpful right, harmless wrong
                                      [-1.0, 0.5, NA],     # harmless right
                                      [-0.5, -0.5, 2.0],   # only arithmetic right
                                      [0.2, 0.1, NA]]))    # both right
SOURCES = ["hh-helpful", "hh-harmless", "math-arithmetic", "math-arithmetic"]


def mixed_pairs() -> PreferenceDataset:
    """Chat pairs (exact match does not apply) and arithmetic problems (right answer chosen over a wrong one)."""
    problems = [PreferencePair(p.prompt, f"Answer: {p.answer}", f"Answer: {p.answer + 1}", "math")
                for p in make_problems(8, seed=0, level="one-step")]
    return PreferenceDataset(list(make_pairs()) + problems)


def rule_ensemble(data: PreferenceDataset) -> RewardEnsemble:
    ensemble = RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("helpful", "no_refusal"),
                               RuleReward("arithmetic", "exact_match")])
    ensemble.fit_normalization(data, progress=False)
    return ensemble


def test_kl_target_gives_no_weight_to_an_objective_that_does_not_apply():
    from preforch.orchestrator.fit import preference_targets

    data = mixed_pairs()
    ensemble = rule_ensemble(data)
    targets = preference_targets(ensemble, data, tau=0.5, progress=False)
    chosen = ensemble.score(data.prompts, [p.chosen for p in data])
    chat = ~chosen.applies[:, 2]
    assert chat.sum() == len(make_pairs()) and (~chat).sum() == 8
    assert (targets[chat, 2] == 0).all(), "a chat reply says nothing about exact match"
    assert torch.allclose(targets[chat, :2], torch.softmax(chosen.values[chat, :2] / 0.5, -1))
    assert torch.allclose(targets[~chat], torch.softmax(chosen.values[~chat] / 0.5, -1))
    assert torch.allclose(targets.sum(-1), torch.ones(len(data))) and not targets.isnan().any()


def test_bradley_terry_margin_runs_over_the_objectives_that_apply():
    logits = torch.tensor([[0.5, -0.2, 3.0], [0.1, 0.4, -1.0]], requires_grad=True)
    delta = Scores.from_nan(torch.tensor([[1.0, -0.5, NA], [0.3, -0.2, 0.8]]))
    loss = combined_bradley_terry_loss(logits, delta)
    # by hand: the weights are the softmax over all three; exact match adds nothing to pair 0's margin
    w = torch.softmax(logits.detach(), -1)
    margins = torch.stack([w[0, :2] @ torch.tensor([1.0, -0.5]), w[1] @ torch.tensor([0.3, -0.2, 0.8])])
    assert loss.item() == pytest.approx(-F.logsigmoid(margins).mean().item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    # weight on an objective that does not apply only dilutes pair 0's margin: training moves it away (a positive
    # gradient of the loss), so an orchestrator learns to give such objectives no weight
    assert logits.grad[0, 2] > 0
    assert orchestrator_loss("hybrid", logits, torch.tensor([[0.6, 0.4, 0.0], [0.2, 0.3, 0.5]]), delta).isfinite()


def test_best_fixed_weights_are_judged_over_the_objectives_that_apply():
    w, acc = best_fixed_weights(DELTA, divisions=10)
    assert acc == pytest.approx(0.75) and w.sum().item() == pytest.approx(1.0)
    # the one-matmul shortcut agrees with the renormalised margins, and no vector of the lattice does better
    assert preference_accuracy(w, DELTA) == pytest.approx(acc)
    from preforch.data.weights import simplex_grid

    assert max(preference_accuracy(torch.tensor(g), DELTA) for g in simplex_grid(3, 10)) == pytest.approx(acc)


def test_human_label_table_ties_a_pair_whose_weighted_objectives_do_not_apply():
    orch = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    t = human_label_table(DELTA, OBJECTIVES, {"orchestrator": orch}, SOURCES)
    rows = {name: r["accuracy"] for name, r in t["rows"].items()}
    assert rows["arithmetic only"] == pytest.approx((0.5 + 0.5 + 1 + 0.5) / 4)  # ties where exact match does not apply
    assert rows["uniform"] == pytest.approx(0.5)  # pairs 3 and 4 (renormalised margins 1/3 and 0.15)
    assert rows["per-source oracle"] == rows["orchestrator"] == pytest.approx(3.5 / 4)
    json.dumps(t, allow_nan=False)
    # the reward model's accuracy per objective counts only the pairs it applies to (pair 4 is no problem)
    assert source_objective_accuracy(DELTA, SOURCES, OBJECTIVES) == {"helpful": 1.0, "harmless": 1.0, "arithmetic": 1.0}


@pytest.mark.parametrize("objective", ["bradley-terry", "kl"])
def test_train_and_evaluate_an_orchestrator_with_an_objective_that_applies_to_some_prompts(tiny_encoder_dir, objective,
                                                                                            tmp_path):
    from preforch.orchestrator.config import OrchestratorConfig
    from preforch.orchestrator.evaluate import evaluate_orchestrator
    from preforch.orchestrator.fit import train_orchestrator

    data = mixed_pairs()
    ensemble = rule_ensemble(data)
    cfg = OrchestratorConfig(encoder=tiny_encoder_dir, objective=objective, epochs=3, validation_fraction=0.25)
    model, info = train_orchestrator(cfg, ensemble, data, progress=False)
    assert all(torch.isfinite(torch.tensor(info["loss_history"])))
    assert info["validation"]["pairs"] > 0
    json.dumps(info, allow_nan=False)
    result = evaluate_orchestrator(model, ensemble, data, torch.tensor(info["mean_target"]),
                                   dump_weights=str(tmp_path / "weights.jsonl"))
    json.dumps(result, allow_nan=False)
    dumped = [json.loads(line) for line in (tmp_path / "weights.jsonl").read_text().splitlines()]
    assert [d["target"]["arithmetic"] == 0 for d in dumped] == [p.source != "math" for p in data]
