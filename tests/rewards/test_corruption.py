import math

import pytest
import torch

from preforch.errors import ConfigError
from preforch.rewards.corruption import Corruption, CorruptedEnsemble, corrupt_z, pair_noise
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.normalization import ZScore
from preforch.rewards.sources import RuleReward


def test_pair_noise_is_a_fixed_standard_normal_function_of_seed_and_key():
    keys = [f"reply {i}" for i in range(4000)]
    a = pair_noise(keys, seed=3)
    assert torch.equal(a, pair_noise(keys, seed=3)) and torch.equal(a.flip(0), pair_noise(keys[::-1], seed=3))
    assert not torch.equal(a, pair_noise(keys, seed=4))
    assert abs(a.mean()) < 0.06 and abs(a.std() - 1) < 0.05


def test_corrupt_z_follows_its_formulas():
    z, noise, words = torch.tensor([1.0, -0.5]), torch.tensor([0.3, -2.0]), torch.tensor([32, 65])
    assert corrupt_z(z, noise, words, "noise", 2.0).tolist() == pytest.approx([1.6, -4.5])
    # 0 at 32 words; one doubling of (1 + words) later, +level
    assert corrupt_z(z, noise, words, "length", 0.5).tolist() == pytest.approx([1.0, 0.0])
    assert corrupt_z(z, noise, words, "random", 1.0).tolist() == pytest.approx(noise.tolist())
    assert corrupt_z(z, noise, words, "random", 0.0).tolist() == pytest.approx(z.tolist())


def _ensemble():
    return RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("engaged", "no_refusal")],
                          ZScore(torch.tensor([-2.0, 0.5]), torch.tensor([1.5, 0.5]), 10))


def test_a_corrupted_ensemble_changes_one_objective_exactly_and_shares_the_clean_cache():
    base = _ensemble()
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(5)]
    replies = ["Sorry, no.", "A long answer " * 10, "Yes.", "Sure, here it is.", "No"]
    clean = base.score(prompts, replies)
    bad = CorruptedEnsemble(base, Corruption("engaged", "noise", 2.0, seed=7))
    corrupted = bad.score(prompts, replies)
    assert bad._cache is base._cache and base.pairs_scored == 5
    assert torch.equal(corrupted.values[:, 0], clean.values[:, 0])  # the other objective untouched
    from preforch.data.schema import content_key
    expected = clean.values[:, 1] + 2.0 * pair_noise([content_key(p, r) for p, r in zip(prompts, replies)], 7)
    assert torch.allclose(corrupted.values[:, 1], expected, atol=1e-5)
    again = bad.score(prompts[::-1], replies[::-1])  # another batch order: the same corrupted score per reply
    assert torch.allclose(again.values.flip(0), corrupted.values)
    assert torch.equal(CorruptedEnsemble(base, Corruption("engaged", "random", 0.0)).score(prompts, replies).values,
                       clean.values)


def test_bad_corruptions_stop_with_one_line():
    with pytest.raises(ConfigError, match=r"corruption: objective 'honesty' is not in the ensemble \(conciseness, engaged\)"):
        CorruptedEnsemble(_ensemble(), Corruption("honesty", "noise", 1.0))
    with pytest.raises(ConfigError, match=r"corruption random: level 1.5 out of range \(\[0, 1\]\)"):
        Corruption("engaged", "random", 1.5)
    with pytest.raises(ConfigError, match="expected one of noise, length, random"):
        Corruption("engaged", "flip", 1.0)
    with pytest.raises(ConfigError, match="level nan out of range"):
        Corruption("engaged", "noise", math.nan)
