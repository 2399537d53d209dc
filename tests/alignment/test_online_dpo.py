import json

import pytest
import torch

from preforch.alignment.config import PolicyConfig
from preforch.alignment.rewards import CombinedReward
from preforch.cli import main
from preforch.errors import ConfigError


def _args(policy, ensemble, data, out, *extra):
    return ["train-policy", "--algorithm", "online-dpo", "--policy", policy, "--ensemble", ensemble, "--train_data",
            str(data), "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--num_generations", "2", "--max_completion_length", "4", "--learning_rate", "1e-2", "--save_steps", "1",
            "--beta", "0.1", *extra]


def _prompts(tmp_path, n=8):
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "a", "rejected": "b"}) for i in range(n)))
    return data


def test_online_dpo_trains_with_each_prompts_own_weights(tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir,
                                                        tmp_path, monkeypatch):
    """TRL's online DPO hands the `weights` column to the reward, each prompt's vector beside both its completions."""
    from transformers import AutoModelForCausalLM

    from preforch.orchestrator.preference import preference_weights
    from preforch.rewards.ensemble import RewardEnsemble

    calls = []
    original = CombinedReward.__call__

    def spy(self, prompts, completions, weights=None, **columns):
        calls.append((prompts, weights))
        return original(self, prompts, completions, weights=weights, **columns)

    monkeypatch.setattr(CombinedReward, "__call__", spy)
    out = tmp_path / "run"
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, _prompts(tmp_path), out, "--orchestrator",
                      tiny_orchestrator_dir)) == 0
    before = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    after = AutoModelForCausalLM.from_pretrained(out / "policy")
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    assert (out / "checkpoint-2").is_dir()
    assert len(calls) == 2 and all(len(p) == len(w) == 8 for p, w in calls)  # 4 prompts x 2 completions a step
    objectives = RewardEnsemble.load(tiny_ensemble_dir).objectives
    for prompts, weights in calls:
        expected = preference_weights(None, [tuple(p) for p in prompts], objectives, tiny_orchestrator_dir)
        assert torch.tensor(weights) == pytest.approx(expected, abs=1e-6)


def test_normalize_then_sum_is_refused():
    with pytest.raises(ConfigError, match="normalize-then-sum is not available with --algorithm online-dpo"):
        PolicyConfig(algorithm="online-dpo", aggregation="normalize-then-sum")


def test_an_ensemble_without_normalisation_stops_naming_the_option(tiny_policy_dir, tmp_path, capsys):
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import RuleReward

    RewardEnsemble([RuleReward("conciseness", "conciseness")]).save(tmp_path / "ens")
    out = tmp_path / "run"
    assert main(_args(tiny_policy_dir, str(tmp_path / "ens"), _prompts(tmp_path), out, "--method", "morlhf")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("preforch train-policy: error: --ensemble: the reward ensemble has no normalisation")
    assert len(err.splitlines()) == 1
    assert not out.exists()
