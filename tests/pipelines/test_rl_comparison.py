import json

import pytest

from preforch.cli import main
from preforch.config import RLComparisonConfig
from preforch.errors import ConfigError
from preforch.pipelines.rl_comparison import paired_delta


def test_paired_delta_uses_per_prompt_differences():
    d = paired_delta([1.0, 2.0, 3.0, 4.0], [0.5, 1.5, 2.5, 3.5])
    assert d["mean"] == pytest.approx(0.5) and d["ci95"] == pytest.approx(0.0)  # a constant shift is certain
    assert paired_delta([1.0, 0.0], [0.0, 1.0])["mean"] == pytest.approx(0.0)


def test_config_rejects_bad_methods():
    with pytest.raises(ConfigError, match="methods: expected one of"):
        RLComparisonConfig(methods=["pro-morlhf", "ppo"])
    with pytest.raises(ConfigError, match="distinct"):
        RLComparisonConfig(methods=["morlhf", "morlhf"])


def test_rl_compare_trains_both_methods_and_judges_every_checkpoint(tiny_policy_dir, tiny_ensemble_dir,
                                                                    tiny_orchestrator_dir, tmp_path, capsys):
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    out = tmp_path / "cmp"
    args = ["rl-compare", "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir, "--orchestrator", tiny_orchestrator_dir,
            "--train_data", str(data), "--eval_data", str(data), "--eval_prompts_per_source", "3", "--output_dir", str(out),
            "--max_steps", "2", "--save_steps", "1", "--per_device_train_batch_size", "4", "--num_generations", "2",
            "--max_completion_length", "4", "--learning_rate", "1e-2", "--use_lora", "true"]
    assert main(args) == 0
    r = json.loads((out / "rl_comparison.json").read_text())
    assert set(r["methods"]) == {"pro-morlhf", "morlhf"} and r["weightings"] == ["uniform", "orchestrator"]
    for d in r["methods"].values():
        # step 0 (shared initial policy), the LoRA checkpoint at step 1, the merged final policy at step 2
        assert [p[0] for p in d["heldout_curve"]["orchestrator"]] == [0, 1, 2]
        assert d["final_step"] == 2 and len(d["training_reward"]) == 2
        assert set(d["final"]["mean"]) == {"helpful", "harmless", "conciseness"}
    assert (out / "reward_vs_step.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "| initial | 0 |" in report and "Δ combined, orchestrator w (paired)" in report
    assert "held-out combined reward change" in capsys.readouterr().out

    # A re-run reuses every finished stage: nothing is trained or generated again.
    stamp = (out / "eval" / "morlhf-step2" / "evaluation.json").stat().st_mtime_ns
    assert main(args) == 0
    assert "skipping training" in capsys.readouterr().out
    assert (out / "eval" / "morlhf-step2" / "evaluation.json").stat().st_mtime_ns == stamp
    assert "judged by the training ensemble" in (out / "report.md").read_text()

    # Another judge re-judges every snapshot without training again, and the report names it.
    from preforch.rewards.ensemble import RewardEnsemble

    judge = tmp_path / "judge"
    RewardEnsemble.load(tiny_ensemble_dir).save(judge)
    assert main([*args, "--judge", str(judge)]) == 0
    assert (out / "eval" / "morlhf-step2" / "evaluation.json").stat().st_mtime_ns != stamp
    assert json.loads((out / "eval" / "initial" / "evaluation.json").read_text())["judge"] == str(judge)
    assert f"judged by `{judge}`" in (out / "report.md").read_text()


def test_rl_compare_refuses_a_judge_with_other_objectives(tiny_ensemble_dir, tmp_path, capsys):
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import RuleReward

    RewardEnsemble([RuleReward("conciseness", "conciseness")]).save(tmp_path / "judge")
    assert main(["rl-compare", "--ensemble", tiny_ensemble_dir, "--judge", str(tmp_path / "judge"),
                 "--output_dir", str(tmp_path / "o")]) == 2
    assert "objectives ['conciseness'] do not match the reward ensemble's" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_rl_compare_refuses_a_reference_point_of_the_wrong_length(tiny_ensemble_dir, tmp_path, capsys):
    assert main(["rl-compare", "--ensemble", tiny_ensemble_dir, "--reference_point", "-1", "-1",
                 "--output_dir", str(tmp_path / "o")]) == 2
    assert "reference_point: expected 3 values" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_rl_compare_checks_every_methods_weights_before_training_any(tiny_policy_dir, tiny_ensemble_dir,
                                                                    tiny_orchestrator_dir, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["rl-compare", "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir, "--orchestrator",
                 tiny_orchestrator_dir, "--weights", "kindness=1", "--output_dir", str(out)]) == 2
    assert "unknown objective 'kindness'" in capsys.readouterr().err  # morlhf's weights, though pro-morlhf comes first
    assert not out.exists()
