"""Per-objective normalisation with per-prompt weights (`--aggregation normalize-then-sum`, issue 44)."""

import pytest
import torch

from preforch.alignment.advantages import normalize_then_sum

NAN = float("nan")


def _trl_normalize_then_sum(rewards: torch.Tensor, reward_weights: torch.Tensor, num_generations: int) -> torch.Tensor:
    """TRL's own branch (GRPOTrainer._generate_and_score_completions, multi_objective_aggregation
    "normalize_then_sum"), run through a trainer in the test below; written out here for the hand-built cases."""
    from trl.trainer.utils import nanstd

    grouped = rewards.view(-1, num_generations, rewards.shape[1])
    mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
    std_k = nanstd(grouped, dim=1, keepdim=True)
    reward_k = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, rewards.shape[1])
    summed = (reward_k * reward_weights.unsqueeze(0)).nansum(dim=1)
    return (summed - torch.nanmean(summed)) / (nanstd(summed) + 1e-4)


def test_one_shared_weight_vector_is_trls_normalize_then_sum():
    torch.manual_seed(0)
    rewards, w = torch.randn(12, 3), torch.tensor([0.15, 0.20, 0.65])
    ours = normalize_then_sum(rewards, w.expand(12, 3), num_generations=4)
    torch.testing.assert_close(ours, _trl_normalize_then_sum(rewards, w, 4))


def test_two_prompts_with_different_weights_keep_their_magnitude():
    # two prompts, two completions each, the same reward pattern: (+1, -1) on helpful, (-1, +1) on harmless
    rewards = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])
    weights = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    a = normalize_then_sum(rewards, weights, num_generations=2)
    # per objective the group gives +-1/(sqrt(2)+eps); prompt 1 sums 0.8 of it, prompt 2 0.2: a 4:1 ratio that GRPO's
    # sum-then-normalize (each group scaled to unit std) would flatten to 1:1
    assert a[0] / a[2] == pytest.approx(4.0, rel=1e-4) and a[0] == pytest.approx(-a[1]) and a[0] > 0
    per_group_std = torch.tensor([a[:2].std().item(), a[2:].std().item()])
    assert per_group_std[0] / per_group_std[1] == pytest.approx(4.0, rel=1e-4)


def test_an_objective_that_does_not_apply_drops_out_of_that_prompts_sum():
    # prompt 1: a chat prompt, exact match (column 2) does not apply; prompt 2: a problem, all three apply
    rewards = torch.tensor([[1.0, 0.0, NAN], [0.0, 1.0, NAN], [0.5, 0.5, 1.0], [0.5, 0.5, 0.0]])
    weights = torch.tensor([[0.3, 0.2, 0.5]] * 2 + [[0.0, 0.0, 1.0]] * 2)
    a = normalize_then_sum(rewards, weights, num_generations=2)
    assert torch.isfinite(a).all()
    # on the chat prompt helpful and harmless share its weight 0.6 : 0.4 (renormalised): the first completion,
    # better on helpful, leads by what those weights say, exactly as if the chat prompt had no third objective
    two = normalize_then_sum(rewards[:2, :2], torch.tensor([[0.6, 0.4]] * 2), num_generations=2)
    raw = torch.stack([a[:2] - a[:2].mean(), two - two.mean()])
    assert raw[0, 0] > 0 and raw[0, 0] / raw[0, 1] == pytest.approx(raw[1, 0] / raw[1, 1])


def test_through_trls_trainer_one_shared_vector_gives_trls_advantages(tiny_policy_dir, tmp_path):
    """The subclass on TRL's own trainer path: with every prompt weighted w, its advantages are those TRL computes
    with `reward_weights = w` on the same completions."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from preforch.alignment.per_prompt_grpo import PerPromptWeightsGRPOTrainer

    def length(completions, **_):
        return [float(len(c[0]["content"])) for c in completions]

    def vowels(completions, **_):
        return [float(sum(ch in "aeiou" for ch in c[0]["content"])) for c in completions]

    w = [0.3, 0.7]
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(4)]
    data = Dataset.from_dict({"prompt": prompts, "weights": [w] * 4})
    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=4, max_completion_length=8,
                      multi_objective_aggregation="normalize_then_sum", reward_weights=w, use_cpu=True, report_to="none",
                      bf16=False, activation_checkpointing=False, seed=0)
    trainer = PerPromptWeightsGRPOTrainer(model=tiny_policy_dir, reward_funcs=[length, vowels], args=args,
                                          train_dataset=data, processing_class=tok)
    batch = [dict(row) for row in data for _ in range(4)][:8]  # two prompts x four completions, as TRL's sampler
    torch.manual_seed(0)
    ours = trainer._generate_and_score_completions(batch)["advantages"]
    torch.manual_seed(0)
    theirs = GRPOTrainer._generate_and_score_completions(trainer, batch)["advantages"]
    assert ours.shape == (8,) and ours.abs().sum() > 0
    torch.testing.assert_close(ours, theirs)
    for row in batch[4:]:  # the second prompt now weighs the objectives the other way: only its advantages move
        row["weights"] = [0.7, 0.3]
    torch.manual_seed(0)
    other = trainer._generate_and_score_completions(batch)["advantages"]
    assert not torch.allclose(other[4:], theirs[4:])
