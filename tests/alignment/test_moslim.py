"""train-policy --method moslim: random levels tags, the mapped reward with stored statistics, one GRPO step."""

import json

import pytest
import torch

from preforch.alignment.moslim import MoslimReward, random_levels
from preforch.cli import main
from preforch.data.conditioning import MASKED, render
from preforch.rewards.classifier_reward import ClassifierReward
from preforch.rewards.levels import mapped_reward


def test_random_levels_name_a_nonempty_subset_including_low_levels():
    levels = random_levels(400, (2, 2, 5), seed=0)
    named = levels != MASKED
    assert named.any(-1).all() and 0.3 < (~named).float().mean() < 0.5
    assert (levels.max(0).values == torch.tensor([1, 1, 4])).all()
    assert all((levels[:, h] == 0).any() for h in range(3))  # low levels are asked for too
    assert torch.equal(levels, random_levels(400, (2, 2, 5), seed=0))


def test_reward_scores_the_untagged_prompt_with_stored_statistics_never_refitted(tiny_classifier_dir, monkeypatch):
    import preforch.rewards.levels as levels_module

    clf = ClassifierReward(tiny_classifier_dir, device="cpu")
    reward = MoslimReward(clf, "probability")
    stats = clf.stats
    monkeypatch.setattr(levels_module, "fit_level_stats", lambda *a: pytest.fail("statistics re-fitted per batch"))
    plain = [{"role": "user", "content": "How do I bake bread?"}]
    asks = torch.tensor([[1, MASKED, MASKED], [MASKED, 0, 4]])
    prompts = [list(render(plain, row, clf.objectives, "levels", clf.num_levels)) for row in asks]
    replies = ["Mix flour, water, yeast; knead; bake.", "no"]
    logged = {}
    for batch in ([0, 1], [1]):  # two different batches: the same stored statistics
        out = reward([prompts[i] for i in batch], [[{"role": "assistant", "content": replies[i]}] for i in batch],
                     log_metric=logged.__setitem__)
        probs = clf.probabilities([tuple(plain)] * len(batch), [replies[i] for i in batch])
        expected, _ = mapped_reward(probs, asks[batch], stats, clf.num_levels)
        assert out == pytest.approx(expected.tolist())
    assert reward.stats is stats
    for head in clf.objectives:
        assert {f"moslim/{head}/expected_level", f"moslim/{head}/masked"} <= set(logged)
    assert logged["moslim/harmless/masked"] == 0.0 and "moslim/quality/p_requested" in logged


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_one_step_changes_parameters_logs_every_head_and_serves_as_moslim(algorithm, tiny_policy_dir,
                                                                          tiny_classifier_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from preforch.serving.policies.folder import load_preference_policy

    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    out = tmp_path / "run"
    assert main(["train-policy", "--method", "moslim", "--algorithm", algorithm, "--policy", tiny_policy_dir,
                 "--classifier", tiny_classifier_dir, "--train_data", str(data), "--output_dir", str(out),
                 "--max_steps", "1", "--per_device_train_batch_size", "4", "--num_generations", "2",
                 "--max_completion_length", "4", "--learning_rate", "1e-2"]) == 0
    before = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    after = AutoModelForCausalLM.from_pretrained(out / "policy")
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    logged = set().union(*(json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()))
    for head in ("helpful", "harmless", "quality"):
        assert {f"moslim/{head}/expected_level", f"moslim/{head}/masked"} <= {k.removesuffix("/mean") for k in logged}
    policy = load_preference_policy(str(out / "policy"))
    assert policy.kind == "moslim" and policy.objectives == ("helpful", "harmless", "quality")


def test_moslim_needs_a_classifier(tiny_policy_dir, tmp_path, capsys):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    assert main(["train-policy", "--method", "moslim", "--policy", tiny_policy_dir, "--train_data", str(data),
                 "--output_dir", str(tmp_path / "run")]) == 2
    assert "moslim needs --classifier" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_config_refuses_an_unknown_mapping_and_moslim_in_rl_compare():
    from preforch.alignment.config import PolicyConfig
    from preforch.errors import ConfigError
    from preforch.pipelines.config import RLComparisonConfig

    with pytest.raises(ConfigError, match="mapping: expected one of probability, expected, distance"):
        PolicyConfig(method="moslim", mapping="linear")
    with pytest.raises(ConfigError, match="moslim is not part of rl-compare"):
        RLComparisonConfig(methods=["morlhf", "moslim"])
