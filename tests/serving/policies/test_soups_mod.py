import json

import pytest
import torch

from preforch.errors import ConfigError
from preforch.generation.sampling import SamplingConfig, sample_candidates
from preforch.serving.decoding.mixed_decoding import mix_log_probs
from preforch.serving.policies.folder import POLICY_FILE, load_preference_policy
from tests.conftest import make_experts

PROMPTS = [({"role": "user", "content": "hi"},), ({"role": "user", "content": "how do I bake a loaf of bread today?"},),
           ({"role": "user", "content": "tell me a story"},)]
GREEDY = SamplingConfig(num_candidates=1, max_new_tokens=6, temperature=0.0, batch_size=8)


def _rows(*w):
    return torch.tensor([list(w)] * len(PROMPTS))


def _logits(model, tok, adapter):
    model.set_adapter(adapter, inference_mode=True)
    with torch.no_grad():
        return model(**tok(["hello there, friend"], return_tensors="pt")).logits


def _expert_replies(policy, k, sampling=GREEDY):
    """What expert k alone answers, through transformers' own generate."""
    model, tok = policy.model_and_tokenizer()
    model.set_adapter(policy.experts.names[k], inference_mode=True)
    return sample_candidates(model, tok, PROMPTS, sampling, progress=False)


def test_soups_at_a_corner_of_the_simplex_is_exactly_that_expert(tiny_experts_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    policy = load_preference_policy(tiny_experts_dir, "soups")
    model, tok = policy.model_and_tokenizer()
    for k in range(3):
        one_hot = [float(i == k) for i in range(3)]
        alone = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(policy.experts.base_model),
                                          str(policy.experts.adapters[k])).eval()
        with torch.no_grad():
            expected = alone(**tok(["hello there, friend"], return_tensors="pt")).logits
        assert torch.equal(_logits(model, tok, policy.adapter(one_hot)), expected)
    assert not torch.allclose(_logits(model, tok, "expert0"), _logits(model, tok, "expert1"))  # the experts differ


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def test_cat_soup_is_the_weighted_sum_of_the_experts_deltas_and_linear_is_not(tiny_experts_dir):
    w = (0.5, 0.3, 0.2)
    cat = load_preference_policy(tiny_experts_dir, "soups")
    linear = load_preference_policy(tiny_experts_dir, "soups", combination="linear")
    cat_soup, linear_soup = cat.adapter(w), linear.adapter(w)
    layers = _lora_layers(cat.model_and_tokenizer()[0])
    assert len(layers) == 14  # 2 blocks x 7 linear layers
    for layer in layers:
        exact = sum(wi * layer.get_delta_weight(name) for wi, name in zip(w, cat.experts.names))
        torch.testing.assert_close(layer.get_delta_weight(cat_soup), exact, rtol=1e-5, atol=1e-6)
    # the original's interpolation of A and B has cross terms w_i w_j B_i A_j: not the sum of the deltas
    layer = _lora_layers(linear.model_and_tokenizer()[0])[0]
    a = [layer.lora_A[n].weight for n in linear.experts.names]
    b = [layer.lora_B[n].weight for n in linear.experts.names]
    interpolated = layer.scaling["expert0"] * sum(wi * bi for wi, bi in zip(w, b)) @ sum(wi * ai for wi, ai in zip(w, a))
    torch.testing.assert_close(layer.get_delta_weight(linear_soup), interpolated, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(interpolated, sum(wi * layer.get_delta_weight(n) for wi, n in zip(w, linear.experts.names)))


def test_soups_of_identical_experts_are_that_expert_under_either_combination(tiny_policy_dir, tmp_path):
    same = make_experts(tiny_policy_dir, tmp_path / "same", same=True)
    for combination in ("cat", "linear"):
        policy = load_preference_policy(same, "soups", combination=combination)
        soup = policy.adapter((0.2, 0.5, 0.3))
        for layer in _lora_layers(policy.model_and_tokenizer()[0]):
            torch.testing.assert_close(layer.get_delta_weight(soup), layer.get_delta_weight("expert0"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("combination", ["cat", "linear"])
def test_soups_merge_once_per_weight_and_answer_mixed_weights_as_each_alone(tiny_experts_dir, combination):
    policy = load_preference_policy(tiny_experts_dir, "soups", combination=combination)
    model, _ = policy.model_and_tokenizer()
    a, b = [0.5, 0.5, 0.0], [0.0, 0.25, 0.75]
    mixed = policy.respond(PROMPTS, torch.tensor([a, b, a]), GREEDY)
    soups = [name for name in model.peft_config if name.startswith("soup")]
    assert len(soups) == (0 if combination == "cat" else 2)  # cat: one batch, scaled per row, nothing merged
    alone = {tuple(w): policy.respond(PROMPTS, _rows(*w), GREEDY) for w in (a, b)}
    assert mixed == [alone[tuple(a)][0], alone[tuple(b)][1], alone[tuple(a)][2]]
    assert len([name for name in model.peft_config if name.startswith("soup")]) == 2  # one merge per w, then cached
    assert mixed[0] != alone[tuple(b)][0] or mixed[2] != alone[tuple(b)][2]  # w changes the answers
    for i in range(6):  # only the latest few merges stay
        policy.adapter((0.1 * (i + 1), 1 - 0.1 * (i + 1), 0.0))
    assert len([name for name in model.peft_config if name.startswith("soup")]) == 4


def test_row_scaling_gives_each_row_its_own_merged_soup_and_restores_the_model(tiny_experts_dir):
    from preforch.serving.policies.soups import row_scaling

    policy = load_preference_policy(tiny_experts_dir, "soups")
    model, tok = policy.model_and_tokenizer()
    a, b = (0.5, 0.5, 0.0), (0.0, 0.25, 0.75)
    merged = [_logits(model, tok, policy.adapter(w)) for w in (a, b)]
    enc = tok(["hello there, friend"] * 2, return_tensors="pt")
    with row_scaling(model, policy.experts.names) as scale, torch.no_grad():
        scale(torch.tensor([a, b]))
        rows = model(**enc).logits
    torch.testing.assert_close(rows, torch.cat(merged), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(rows[0], rows[1], atol=1e-3)
    assert model.active_adapter == "soup1"  # as before
    torch.testing.assert_close(_logits(model, tok, "soup0"), merged[0])  # scalings restored


def test_mod_at_a_corner_decodes_exactly_as_that_expert(tiny_experts_dir):
    policy = load_preference_policy(tiny_experts_dir, "mod")
    answers = []
    for k in range(3):
        one_hot = [float(i == k) for i in range(3)]
        answers.append(_expert_replies(policy, k))
        assert policy.respond(PROMPTS, _rows(*one_hot), GREEDY) == answers[k]
    assert answers[0] != answers[1]
    # rows of one call under different weights are mixed each by its own
    rows = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert policy.respond(PROMPTS, rows, GREEDY) == [answers[0][0], answers[1][1], answers[2][2]]


@pytest.mark.parametrize("divergence", ["reverse-kl", "forward-kl"])
def test_mod_over_identical_experts_is_one_expert(divergence, tiny_policy_dir, tmp_path):
    policy = load_preference_policy(make_experts(tiny_policy_dir, tmp_path / "same", same=True), "mod", divergence=divergence)
    long = SamplingConfig(num_candidates=1, max_new_tokens=12, temperature=0.0)
    expected = _expert_replies(policy, 0, long)
    assert policy.respond(PROMPTS, torch.tensor([[1 / 3] * 3, [0.2, 0.5, 0.3], [0.0, 0.6, 0.4]]), long) == expected


def test_mod_samples_reproducibly_with_several_candidates(tiny_experts_dir):
    policy = load_preference_policy(tiny_experts_dir, "mod")
    sampling = SamplingConfig(num_candidates=2, max_new_tokens=5, temperature=0.9, top_p=0.9, seed=3)
    first = policy.respond(PROMPTS, _rows(0.2, 0.3, 0.5), sampling)
    assert [len(row) for row in first] == [2, 2, 2] and all(isinstance(r, str) for row in first for r in row)
    assert policy.respond(PROMPTS, _rows(0.2, 0.3, 0.5), sampling) == first


def test_mixing_normalised_log_probs():
    log_probs = torch.log_softmax(torch.randn(2, 3, 5), -1)  # [E, B, V]
    log_probs[1, :, 0] = -torch.inf  # expert 1 rules token 0 out
    weights = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]])  # [B, E]
    reverse = mix_log_probs(log_probs, weights, "reverse-kl")
    assert torch.equal(reverse[0], log_probs[0, 0])  # weight 0: no nan from 0 * -inf
    torch.testing.assert_close(reverse[2, 1:], 0.25 * log_probs[0, 2, 1:] + 0.75 * log_probs[1, 2, 1:])
    forward = mix_log_probs(log_probs, weights, "forward-kl")
    torch.testing.assert_close(forward[0], log_probs[0, 0])
    manual = -torch.logsumexp(torch.stack([-log_probs[0, 1] + torch.tensor(0.5).log(), -log_probs[1, 1] + torch.tensor(0.5).log()]), 0)
    torch.testing.assert_close(forward[1], manual)
    assert reverse[1:, 0].eq(-torch.inf).all() and forward[1:, 0].eq(-torch.inf).all()


def test_bad_soups_and_mod_settings_name_the_file_and_field(tiny_policy_dir, tiny_experts_dir, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / POLICY_FILE).write_text(json.dumps({"kind": "mod", "policy": tiny_experts_dir, "divergence": "alpha"}))
    with pytest.raises(ConfigError, match=rf"{POLICY_FILE}: divergence: expected one of reverse-kl, forward-kl"):
        load_preference_policy(str(folder))
    with pytest.raises(ConfigError, match="combination: expected one of cat, linear, got 'svd'"):
        load_preference_policy(tiny_experts_dir, "soups", combination="svd")
    with pytest.raises(ConfigError, match="not an experts folder"):
        load_preference_policy(tiny_policy_dir, "soups")
    mixed_ranks = make_experts(tiny_policy_dir, tmp_path / "ranks", objectives=("helpful",), r=2)
    make_experts(tiny_policy_dir, tmp_path / "ranks", objectives=("harmless", "conciseness"), r=4)
    data = json.loads((tmp_path / "ranks" / "experts.json").read_text())
    data["objectives"] = ["helpful", "harmless", "conciseness"]
    data["experts"] = {o: f"experts/{o}" for o in data["objectives"]}
    (tmp_path / "ranks" / "experts.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="combination 'linear' .* must agree on r and lora_alpha"):
        load_preference_policy(mixed_ranks, "soups", combination="linear")
    assert load_preference_policy(mixed_ranks, "soups").adapter((0.5, 0.5, 0.0)) == "soup0"  # cat takes any ranks
