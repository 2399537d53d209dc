"""Where serving follows its sources (issue 32): MAHALO's mixing weights on the model's device, MOD's forward-KL over
whole prefixes, step scores on one scale, and what raw-logit mixing would change."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from preforch.data.schema import PreferenceDataset, PreferencePair
from preforch.generation.sampling import SamplingConfig
from preforch.serving.decoding.mixed_decoding import mix_log_probs, mixed_decode
from preforch.serving.policies.folder import load_preference_policy
from tests.conftest import make_mahalo_dir, make_pairs

ROOT = Path(__file__).resolve().parents[3]
OBJECTIVES = ("helpful", "harmless", "arithmetic")
PROMPTS = [({"role": "user", "content": "hi"},), ({"role": "user", "content": "tell me a story"},)]


@pytest.fixture(scope="module")
def mahalo_dir(tiny_policy_dir, tmp_path_factory) -> str:
    """A MAHALO folder on the tiny policy whose heads differ."""
    return make_mahalo_dir(tiny_policy_dir, tmp_path_factory.mktemp("mahalo"), OBJECTIVES)


class ReportsDevice:
    """Stands in for a MultiHeadLM on `device`: the policy reads its device and generation config; the mixer, patched
    here, never runs it."""

    def __init__(self, device: str, generation_config):
        self.device, self.generation_config = torch.device(device), generation_config


@pytest.mark.parametrize("device", ["meta"] + (["cuda"] if torch.cuda.is_available() else []))
def test_mahalo_hands_the_mixer_its_weights_on_the_models_device(device, mahalo_dir, monkeypatch):
    """On cuda the policy decodes for real, where a weight left on the CPU fails the mix. Elsewhere a model that
    reports the meta device and a recording mixed_decode check every tensor the mixer gets sits beside the prompt."""
    import preforch.serving.decoding.mixed_decoding as md

    policy = load_preference_policy(mahalo_dir, "mahalo")
    w = torch.tensor([[0.2, 0.5, 0.3]] * 2)
    if device == "cuda":
        assert policy.model_and_tokenizer()[0].device.type == "cuda"
        assert [len(r) for r in policy.respond(PROMPTS, w, SamplingConfig(1, 4, 0.0))] == [1, 1]
        assert len(policy.rollout(torch.tensor([[1, 2]], device=device), [3], w[0].to(device), 2)) == 2
        return
    model, tok = policy.model_and_tokenizer()
    policy._loaded = (ReportsDevice(device, model.generation_config), tok)
    seen = []

    def recording(models, input_ids, attention_mask, weights, **_):
        seen.append({t.device for t in (input_ids, attention_mask, weights)})
        return torch.zeros(len(input_ids), 1, dtype=torch.long)

    monkeypatch.setattr(md, "mixed_decode", recording)
    policy.respond(PROMPTS, w, SamplingConfig(1, 4, 0.0))  # unguided: the heads mixed by w
    policy.rollout(torch.tensor([[1, 2]], device=device), [3], w[0].to(device), 2)  # a Monte Carlo rollout
    assert seen == [{torch.device(device)}] * 2


class TableLM:
    """A causal LM whose next-token distribution depends on the last token only: probs [V, V], row = last token."""

    def __init__(self, probs: list[list[float]]):
        self.log_probs = torch.tensor(probs).log()

    def __call__(self, input_ids, **_):
        return SimpleNamespace(logits=self.log_probs[input_ids[:, -1]][:, None], past_key_values=None)


# token 2 starts the prompt and ends a reply (never likely enough to be chosen)
A = TableLM([[0.6, 0.35, 0.05], [0.7, 0.25, 0.05], [0.6, 0.35, 0.05]])
B = TableLM([[0.2, 0.75, 0.05], [0.2, 0.75, 0.05], [0.2, 0.75, 0.05]])


def sequence_greedy(models: list[TableLM], w: list[float], steps: int, divergence: str) -> list[int]:
    """MOD's greedy decoding by its definition: at each step the token whose whole prefix (from prompt token 2)
    scores highest, each model's log-prob of the prefix summed token by token, then mixed by `mix_log_probs`."""
    tokens: list[int] = []
    for _ in range(steps):
        def prefix_logp(m: TableLM, y: int) -> float:
            seq = [2, *tokens, y]
            return sum(float(m.log_probs[a, b]) for a, b in zip(seq, seq[1:]))
        logp = torch.tensor([[[prefix_logp(m, y) for y in range(3)]] for m in models])  # [E, 1, V]
        tokens.append(int(mix_log_probs(logp, torch.tensor([w]), divergence).argmax()))
    return tokens


@pytest.mark.parametrize("divergence", ["forward-kl", "reverse-kl"])
def test_mod_decodes_as_mods_sequence_level_mix(divergence):
    ids = torch.tensor([[2], [2]])
    out = mixed_decode([A, B], ids, torch.ones_like(ids), torch.tensor([[0.5, 0.5], [1.0, 0.0]]), max_new_tokens=2,
                       eos_ids=[2], pad_id=2, divergence=divergence)
    assert out.tolist() == [sequence_greedy([A, B], [0.5, 0.5], 2, divergence), [0, 0]]
    # step 2 mixed per token (A's 0.7 / 0.25 and B's 0.2 / 0.75 alone) picks 1 under either divergence; forward-KL's
    # whole prefixes (A gave token 1 0.35, B 0.75) pick 0. Reverse-KL's prefix terms are one number per row.
    per_token = mix_log_probs(torch.stack([A.log_probs[1], B.log_probs[1]])[:, None], torch.tensor([[0.5, 0.5]]),
                              divergence)
    assert per_token.argmax().item() == 1 and out[0].tolist() == ([1, 0] if divergence == "forward-kl" else [1, 1])


def test_mod_forward_kl_samples_reproducibly():
    ids = torch.tensor([[2]] * 4)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(mixed_decode([A, B], ids, torch.ones_like(ids), torch.tensor([[0.3, 0.7]] * 4), max_new_tokens=8,
                                 eos_ids=[2], pad_id=2, temperature=1.0, top_p=0.9, divergence="forward-kl"))
    assert torch.equal(*runs) and ((runs[0] >= 0) & (runs[0] <= 2)).all()


def _arithmetic_guide(tiny_rm_dir, folder=None):
    """helpful + harmless (tiny RM) + arithmetic (the exact_match rule), normalised on HH pairs and problems, a
    quarter of the problem replies right, so the rule's statistics (fitted on the problems, where it applies) are
    neither 0 / 1 nor BALANCED's; saved to `folder` if given."""
    from preforch.data.arithmetic import make_problems
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import HFRewardModel, RuleReward

    problems = make_problems(6, seed=0)
    pairs = [PreferencePair(tuple(p.prompt), f"The answer is {p.answer + 2 * (i >= 3)}.", f"The answer is {p.answer + 1}.",
                            "arith") for i, p in enumerate(problems)]
    ensemble = RewardEnsemble([HFRewardModel(tiny_rm_dir, device="cpu"), RuleReward("arithmetic", "exact_match")])
    ensemble.fit_normalization(PreferenceDataset(list(make_pairs(12)) + pairs), progress=False)
    if folder is not None:
        ensemble.save(folder)
    return ensemble, problems[0]


def test_checker_values_are_z_scored_with_the_guides_own_statistics_or_balanced(tiny_rm_dir, tiny_ensemble_dir):
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.serving.decoding.step_scorers import BALANCED, EnsembleStepScorer, checker_statistics

    guide, problem = _arithmetic_guide(tiny_rm_dir)
    mean, std = checker_statistics(guide, "arithmetic")
    assert 0.1 < mean < 0.4 and (mean, std) != BALANCED
    scorer = EnsembleStepScorer(guide, OBJECTIVES)
    replies = [f"The answer is {problem.answer}.", "The answer is -1."]
    own = guide.score([tuple(problem.prompt)] * 2, replies).values[:, 2]  # the ensemble's score of finished replies
    torch.testing.assert_close(scorer.checker_zscores("arithmetic", torch.tensor([1.0, 0.0])), own)
    assert checker_statistics(RewardEnsemble.load(tiny_ensemble_dir), "arithmetic") == BALANCED  # no such rule
    plain = EnsembleStepScorer(RewardEnsemble.load(tiny_ensemble_dir), OBJECTIVES)
    assert plain.checker_zscores("arithmetic", torch.tensor([1.0, 0.0, 0.25])).tolist() == [1.0, -1.0, -0.5]


def test_mahalo_step_scores_put_the_arithmetic_value_on_the_guides_scale(mahalo_dir, tiny_rm_dir, tmp_path):
    """An unfinished prefix valued 0.25 by rollouts, and a finished right reply, scored as the guide scores replies:
    before, a raw [0, 1] value sat beside z-scored HH scores, so w weighed them on two scales."""
    guide, problem = _arithmetic_guide(tiny_rm_dir, tmp_path / "guide")
    policy = load_preference_policy(mahalo_dir, "mahalo", guide=str(tmp_path / "guide"), step_candidates=2, rollouts=4)
    policy.rollout = lambda ids, tokens, w, n: [f" {problem.answer}", " -1", " no", " no"][:n]
    model, tok = policy.model_and_tokenizer()
    eos = model.generation_config.eos_token_id
    right = tok(f"the answer is {problem.answer}", add_special_tokens=False).input_ids + [eos]  # a finished reply
    rows = [tok("so", add_special_tokens=False).input_ids, right]
    scores = policy.step_scores(problem.prompt, torch.tensor([[1, 2]]), rows, torch.tensor([0.2, 0.2, 0.6]))
    mean, std = guide.normalizer.mean[2], guide.normalizer.std[2]  # the exact_match rule's reference statistics
    torch.testing.assert_close(scores.values[:, 2], torch.tensor([(0.25 - mean) / std, (1.0 - mean) / std]))
    own = guide.score([tuple(problem.prompt)], [tok.decode(right, skip_special_tokens=True)]).values[0, 2]
    torch.testing.assert_close(scores.values[1, 2], own)


def test_guided_steps_on_a_prompt_the_checker_cannot_judge_are_ranked_by_the_objectives_that_apply(mahalo_dir, tiny_rm_dir,
                                                                                                     tmp_path):
    """exact match does not apply to "hi": its step column is masked out (it would be NaN), the combined step reward
    renormalises w over helpful and harmless, and guided decoding answers."""
    from preforch.generation.combined_reward import combined_reward

    _arithmetic_guide(tiny_rm_dir, tmp_path / "guide")
    policy = load_preference_policy(mahalo_dir, "mahalo", guide=str(tmp_path / "guide"), step_candidates=2, rollouts=2,
                                    min_step_tokens=2, max_step_tokens=3)
    _, tok = policy.model_and_tokenizer()
    rows = [tok(t, add_special_tokens=False).input_ids for t in ("so", "Sure, here")]
    w = torch.tensor([0.2, 0.2, 0.6])
    scores = policy.step_scores(PROMPTS[0], torch.tensor([[1, 2]]), rows, w)
    assert scores.applies.tolist() == [[True, True, False]] * 2
    torch.testing.assert_close(combined_reward(scores, w), 0.5 * scores.values[:, 0] + 0.5 * scores.values[:, 1])
    assert len(policy.respond([PROMPTS[0]], w[None], SamplingConfig(1, 6, 0.8, 1.0))[0]) == 1


def test_raw_logits_mix_as_log_probs_for_reverse_kl_and_reweigh_forward_kl():
    """log pi_i = z_i - log Z_i: for reverse-KL the offsets add one number per row, for forward-KL they reweigh
    model i by 1 / Z_i. The docs say so, and no longer that raw logits weigh the experts "by more than w" in general."""
    torch.manual_seed(0)
    log_probs = torch.randn(2, 3, 7).log_softmax(-1)  # [E, B, V]
    logits = log_probs + torch.tensor([[3.0], [-2.0]])[:, :, None]  # each model's own offset [E, 1, 1]
    w = torch.tensor([[0.3, 0.7]] * 3)
    same = mix_log_probs(logits, w, "reverse-kl").softmax(-1)
    torch.testing.assert_close(same, mix_log_probs(log_probs, w, "reverse-kl").softmax(-1))
    reweighed = torch.tensor([[0.3 * torch.e ** -3.0, 0.7 * torch.e ** 2.0]] * 3)
    reweighed = reweighed / reweighed.sum(-1, keepdim=True)
    torch.testing.assert_close(mix_log_probs(logits, w, "forward-kl").softmax(-1),
                               mix_log_probs(log_probs, reweighed, "forward-kl").softmax(-1))
    assert not torch.allclose(mix_log_probs(logits, w, "forward-kl").softmax(-1),
                              mix_log_probs(log_probs, w, "forward-kl").softmax(-1), atol=1e-3)
    import preforch.serving.decoding.mixed_decoding as md

    for text in (md.__doc__, (ROOT / "docs" / "design.md").read_text()):
        assert "by more than w" not in text and "offsets" in text
