import torch

from preforch.rewards.ensemble import RewardEnsemble
from preforch.serving.decoding.step_scorers import EnsembleStepScorer, arithmetic_step_value


def test_step_value_is_the_checker_at_the_end_and_the_rollout_share_before():
    rollout = lambda prefix, n: ["Answer: 7", "Answer: 8", "Answer: 7", "so 9"][:n]
    assert arithmetic_step_value("3 + 4 = 7. ", 7, False, rollout, 4) == 0.5
    assert arithmetic_step_value("Answer: 7", 7, True, rollout, 4) == 1.0


def test_ensemble_prefix_scores_are_the_normalised_rewards_of_the_policy_objectives(tiny_ensemble_dir):
    ensemble = RewardEnsemble.load(tiny_ensemble_dir)
    scorer = EnsembleStepScorer(ensemble, ["harmless", "arithmetic", "helpful"])
    prompt, prefixes = [{"role": "user", "content": "hi"}], ["Sure, here", "No."]
    s = scorer.scores(prompt, prefixes)
    full = ensemble.score([tuple(prompt)] * 2, prefixes).values
    assert torch.allclose(s.values[:, 0], full[:, 1]) and torch.allclose(s.values[:, 2], full[:, 0])
    assert (s.values[:, 1] == 0).all() and s.applies.all()  # an objective the guide lacks: 0, no guidance
