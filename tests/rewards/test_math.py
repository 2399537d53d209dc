import math

import pytest
import torch

from preforch.rewards.losses import bradley_terry_loss
from preforch.rewards.normalization import ZScore, apply_zscore, fit_zscore
from preforch.rewards.scores import Scores, applicable_weights, combined_reward
from preforch.rewards.rules import BUILTIN_RULES, conciseness, no_refusal, resolve_rule
from preforch.errors import ConfigError, PreforchError


def test_bradley_terry_matches_formula_and_centering_adds_penalty():
    c, r = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    expected = -(math.log(1 / (1 + math.exp(-1))) + math.log(1 / (1 + math.exp(1)))) / 2
    assert bradley_terry_loss(c, r).item() == pytest.approx(expected, rel=1e-5)
    centered = bradley_terry_loss(c, r, center_coefficient=0.5).item()
    assert centered == pytest.approx(expected + 0.5 * (9 + 1) / 2, rel=1e-5)


def test_bt_loss_is_blind_to_offsets_but_centering_is_not():
    c, r = torch.tensor([1.0]), torch.tensor([0.0])
    assert bradley_terry_loss(c + 5, r + 5).item() == pytest.approx(bradley_terry_loss(c, r).item())
    assert bradley_terry_loss(c + 5, r + 5, 0.1).item() > bradley_terry_loss(c, r, 0.1).item()


def test_zscore_fit_apply_and_round_trip():
    raw = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    z = fit_zscore(raw)
    out = apply_zscore(raw, z)
    assert out[:, 0].mean().abs() < 1e-6 and out[:, 0].std().item() == pytest.approx(1.0)
    assert z.std[1] == 1.0  # constant objective: no division by zero
    again = ZScore.from_dict(z.to_dict())
    assert torch.equal(again.mean, z.mean) and again.num_samples == 3


def test_zscore_rejects_bad_reference():
    with pytest.raises(PreforchError, match="at least 2"):
        fit_zscore(torch.zeros(1, 2))
    with pytest.raises(PreforchError, match=r"objective\(s\) \{'arithmetic': 1\} apply to fewer than 2"):
        fit_zscore(Scores.from_nan(torch.tensor([[0.0], [float("nan")]])), objectives=["arithmetic"])
    with pytest.raises(PreforchError, match="NaN"):  # a plain tensor cannot say where an objective does not apply
        fit_zscore(torch.tensor([[0.0], [float("nan")]]))


def test_each_objective_is_fitted_on_the_replies_it_applies_to():
    nan = float("nan")
    # exact match (column 1) applies to the two problems only: its mean is the share right there, 0.5, not 0.25
    raw = Scores.from_nan(torch.tensor([[1.0, nan], [3.0, nan], [5.0, 1.0], [7.0, 0.0]]))
    z = fit_zscore(raw)
    assert z.mean.tolist() == pytest.approx([4.0, 0.5]) and z.counts == (4, 2)
    assert z.std[1].item() == pytest.approx(torch.tensor([1.0, 0.0]).std().item())
    out = apply_zscore(raw, z)
    assert out.applies.equal(raw.applies) and out.values[2:, 1].tolist() == pytest.approx([0.7071, -0.7071], abs=1e-4)
    skipped = fit_zscore(raw, skip=[1])  # fitted elsewhere (--objective_reference): neutral here, count 0
    assert skipped.mean[1] == 0 and skipped.std[1] == 1 and skipped.counts == (4, 0)
    assert ZScore.from_dict(z.to_dict()).counts == (4, 2)
    assert ZScore.from_dict({"mean": [0.0], "std": [1.0], "num_samples": 3}).counts is None  # files from before


def test_the_combined_reward_sums_the_objectives_that_apply():
    nan = float("nan")
    s = Scores.from_nan(torch.tensor([[1.0, -1.0, nan], [1.0, -1.0, 2.0]]))
    w = torch.tensor([0.25, 0.25, 0.5])
    # row 0: exact match does not apply, helpful and harmless share its weight equally: 0.5 * 1 + 0.5 * -1
    assert combined_reward(s, w).tolist() == pytest.approx([0.0, 1.0])
    assert applicable_weights(w, s.applies)[0].tolist() == pytest.approx([0.5, 0.5, 0.0])
    # weight only on what does not apply: every reply ties at 0, never NaN
    assert combined_reward(s[:1], torch.tensor([0.0, 0.0, 1.0])).tolist() == [0.0]
    with pytest.raises(PreforchError, match="no objective applies to item 1"):
        combined_reward(Scores.from_nan(torch.tensor([[1.0], [nan]])), torch.tensor([1.0]))
    assert combined_reward(torch.tensor([[1.0, 3.0]]), torch.tensor([0.5, 0.5])).tolist() == [2.0]  # plain: as before


def test_rules():
    assert conciseness(["q"] * 2, ["short", "a much longer reply than that"]) == pytest.approx(
        [-math.log(2), -math.log(7)])
    assert no_refusal(["q"] * 2, ["I'm sorry, I can't.", "Sure!"]) == [0.0, 1.0]
    assert resolve_rule("conciseness") is BUILTIN_RULES["conciseness"]
    assert resolve_rule("preforch.rewards.rules:no_refusal") is no_refusal
    with pytest.raises(ConfigError, match="unknown rule"):
        resolve_rule("politeness")
    with pytest.raises(ConfigError, match="cannot be imported"):
        resolve_rule("no.such.module:fn")


def test_rule_specs():
    from preforch.rewards.sources import RuleReward

    assert RuleReward.from_spec("conciseness").objectives == ("conciseness",)
    r = RuleReward.from_spec("engaged=preforch.rewards.rules:no_refusal")
    assert r.objectives == ("engaged",) and r.fn is no_refusal


def test_response_pooling_averages_only_the_reply_tokens(tiny_encoder_dir):
    import pytest

    from preforch.errors import ConfigError
    from preforch.rewards.formatting import encode_pairs
    from preforch.rewards.multihead import MultiHeadRewardModel

    rm = MultiHeadRewardModel.from_encoder(tiny_encoder_dir, ["a"], pooling="response").eval()
    enc = encode_pairs(rm.tokenizer, [({"role": "user", "content": "a long question about many things"},)] * 2,
                       ["yes", "a much longer reply with more words"], 64, 32)
    hidden = rm.encoder(**enc).last_hidden_state
    reply = (enc["attention_mask"] * enc["token_type_ids"]).unsqueeze(-1).float()
    expected = (hidden * reply).sum(1) / reply.sum(1)
    assert torch.allclose(rm.features(enc), expected, atol=1e-6)
    assert not torch.allclose(rm.features(enc), hidden.mean(1), atol=1e-3)
    del enc["token_type_ids"]
    with pytest.raises(ConfigError, match="pooling 'response' needs"):
        rm.features(enc)


def test_length_grouped_batches_cover_the_epoch_and_group_similar_lengths():
    import random

    from preforch.rewards.fitting import length_grouped_batches

    lengths = [random.Random(i).randint(1, 500) for i in range(1000)]
    batches = length_grouped_batches(lengths, 16, random.Random(0), group=10)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert sorted(len(b) for b in batches) == [8] + [16] * 62  # 1,000 = 6 windows of 160 + one of 40
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    shuffled = random.Random(1).sample(range(1000), 1000)
    random_spread = sum(max(lengths[i] for i in shuffled[s:s + 16]) - min(lengths[i] for i in shuffled[s:s + 16])
                        for s in range(0, 1000, 16)) / len(batches)
    assert spread < random_spread / 4


def test_last_token_pooling_on_a_causal_lm_is_independent_of_padding(tiny_encoder_dir, tiny_policy_dir):
    from preforch.rewards.formatting import encode_pairs
    from preforch.rewards.multihead import MultiHeadRewardModel

    assert MultiHeadRewardModel.from_encoder(tiny_encoder_dir, ["a"]).pooling == "response"
    rm = MultiHeadRewardModel.from_encoder(tiny_policy_dir, ["a", "b"], pooling="last").eval()
    prompt = ({"role": "user", "content": "a question"},)
    replies = ["yes", "a much longer reply with more words"]
    with torch.no_grad():
        batched = rm.features(encode_pairs(rm.tokenizer, [prompt] * 2, replies, 64, 32))
        alone = torch.cat([rm.features(encode_pairs(rm.tokenizer, [prompt], [r], 64, 32)) for r in replies])
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)  # padding never reaches the pooled state
