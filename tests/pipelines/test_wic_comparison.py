import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from preforch.cli import main
from preforch.errors import ConfigError
from preforch.evaluation.metrics import mean_interval, objective_means, steering_monotonicity
from preforch.pipelines.config import WicComparisonConfig
from preforch.pipelines.wic_comparison import experts_config, stage_plan
from preforch.pipelines.wic_comparison_report import render_report
from preforch.rewards.scores import Scores
from tests.conftest import heldout_file, make_pairs, make_recorded_judge


def test_stage_plan_gives_every_arm_the_same_sft_steps(tmp_path):
    cfg = WicComparisonConfig(output_dir=str(tmp_path), max_steps=40, iterations=2, sft_steps_per_iteration=10)
    plan = stage_plan(cfg)
    online = plan["pro-wic/offline"].max_steps + plan["pro-wic/online"].iterations * plan["pro-wic/online"].sft_steps_per_iteration
    offline_only = plan["ric/offline"].max_steps + plan["ric/offline-more"].max_steps
    assert online == offline_only == 60
    assert plan["pro-wic/online"].preference == "orchestrator" and plan["ric/online"].preference == "random"
    assert plan["ric/offline-more"].policy == plan["ric/online"].policy == str(tmp_path / "ric/offline/policy")
    # offline against offline: Pro-WiC's offline policy gets the same extra offline steps as RiC's
    assert plan["pro-wic/offline-more"].policy == str(tmp_path / "pro-wic/offline/policy")
    assert plan["pro-wic/offline-more"].method == "pro-wic" and plan["pro-wic/offline-more"].stage == "offline"
    assert plan["pro-wic/offline-more"].max_steps == plan["ric/offline-more"].max_steps
    with pytest.raises(ConfigError, match="eval_temperature: must be >= 0"):
        WicComparisonConfig(eval_temperature=-1.0)


def test_old_and_new_online_filters_as_arms_on_shared_offline_stages(tmp_path):
    from preforch.pipelines.wic_comparison import arm_stages

    cfg = WicComparisonConfig(output_dir=str(tmp_path), online_filters=["ric", "offline-thresholds"],
                              ric_preferences="ric-goals")
    plan, arms = stage_plan(cfg), arm_stages(cfg)
    assert list(arms) == ["pro-wic", "ric-online", "pro-wic (offline-thresholds)", "ric-online (offline-thresholds)",
                          "pro-wic-offline", "ric-offline"]
    assert arms["ric-online (offline-thresholds)"] == ("ric/offline", "ric/online-offline-thresholds")
    assert plan["ric/online"].online_filter == "ric" and plan["ric/online-offline-thresholds"].online_filter == "offline-thresholds"
    assert plan["pro-wic/online-offline-thresholds"].policy == plan["pro-wic/online"].policy
    assert plan["ric/online"].preference == "ric-goals" and plan["pro-wic/online"].preference == "orchestrator"
    with pytest.raises(ConfigError, match="online_filters: expected distinct values of ric, offline-thresholds"):
        WicComparisonConfig(online_filters=["ric", "ric"])


def test_experts_take_the_wic_arms_pairs_unless_expert_pairs_says_otherwise(tmp_path):
    cfg = WicComparisonConfig(output_dir=str(tmp_path), max_pairs=32, expert_data=["a.jsonl", "b.jsonl"])
    assert experts_config(cfg, ("helpful", "harmless")).max_train_pairs == 32
    cfg = WicComparisonConfig(output_dir=str(tmp_path), max_pairs=32, expert_pairs=400, expert_data=["a.jsonl", "b.jsonl"])
    assert experts_config(cfg, ("helpful", "harmless")).max_train_pairs == 400
    with pytest.raises(ConfigError, match="expert_pairs: must be > 0"):
        WicComparisonConfig(expert_pairs=0)


def test_report_reads_exact_match_over_the_problems_only():
    objectives = ["helpful", "harmless", "arithmetic"]
    # [G=2, P=9, K=3]: 6 chat prompts, 3 problems all answered wrong (z -1) at every preference: exact match
    # applies to the problems only, and its steering is undefined (a constant), not NaN
    chat = [[0.1 * i, -0.2 * i, math.nan] for i in range(6)]
    judged = Scores.from_nan(torch.tensor([chat + [[0.3, 0.1, -1.0]] * 3, chat + [[0.5, 0.0, -1.0]] * 3]))
    grid = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    row = {"label": "uniform", **objective_means(judged[0], objectives), "combined": mean_interval([0.1, 0.2])}
    arm = {"hypervolume": 1.5, "num_prompts": 9, "equal_weights": row, "orchestrator_weights": row,
           "steering": steering_monotonicity(grid, judged, objectives), "tag_reading": None,
           "compute": {"generated": 4, "kept_fraction": 0.5, "sft_steps": 3, "sft_tokens": 100, "seconds": 2.0}}
    r = {"config": asdict(WicComparisonConfig()), "objectives": objectives, "reference_point": [-2.0] * 3,
         "judge": "judge", "arms": {"pro-wic": arm}, "experts": None}
    json.dumps(r, allow_nan=False)
    report = render_report(r)
    equal = next(line for line in report.splitlines() if line.startswith("| pro-wic | 1.5000 |")).split(" | ")
    assert equal[4] == "-1.000 ± 0.000 (n=3) |" and "(n=" not in equal[2]  # the problems' mean, with its n
    assert "| -1.000 ± 0.000 (n=3) | 0.150 ± 0.635 |" in report  # the orchestrator's row and its combined reward
    assert "n/a / 1.00 / -1.000 -> -1.000 / 0.000 ± 0.000 |" in report  # steering: Spearman undefined


def _small_run(data, out, policy: str, ensemble: str, orchestrator: str) -> list[str]:
    return ["wic-compare", "--policy", policy, "--ensemble", ensemble, "--orchestrator", orchestrator,
            "--train_data", str(data), "--online_data", str(data), "--eval_data", str(data), "--output_dir", str(out),
            "--max_steps", "2", "--iterations", "1", "--sft_steps_per_iteration", "1", "--online_prompts", "2",
            "--num_generations", "2", "--max_new_tokens", "4", "--per_device_train_batch_size", "4", "--max_length", "128",
            "--learning_rate", "1e-2", "--eval_prompts_per_source", "2", "--grid_divisions", "2", "--offline_mix", "2"]


@pytest.fixture
def data(tmp_path):
    file = tmp_path / "pairs.jsonl"
    file.write_text("\n".join(json.dumps({"prompt": list(p.prompt), "chosen": p.chosen, "rejected": p.rejected, "source": src})
                              for src in ("a", "b") for p in make_pairs(4)))
    return file


def test_wic_compare_trains_three_arms_and_reports_fronts_steering_and_compute(
        tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir, data, tmp_path, capsys):
    out = tmp_path / "wic"
    args = _small_run(data, out, tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir) + ["--eval_seed", "5"]
    assert main(args) == 0
    r = json.loads((out / "wic_comparison.json").read_text())
    assert list(r["arms"]) == ["pro-wic", "ric-online", "pro-wic-offline", "ric-offline"]
    # trained with seed 0, judged on the prompts --eval_seed draws (the same for any training seed)
    assert r["config"]["seed"] == 0
    assert json.loads((out / "eval" / "ric-offline" / "evaluation.json").read_text())["config"]["seed"] == 5
    steps = {arm: d["compute"]["sft_steps"] for arm, d in r["arms"].items()}
    assert steps == {"pro-wic": 3, "ric-online": 3, "pro-wic-offline": 3, "ric-offline": 3}, steps
    assert r["arms"]["pro-wic"]["compute"]["generated"] == 4 and r["arms"]["ric-offline"]["compute"]["generated"] == 0
    for d in r["arms"].values():
        assert set(d["steering"]) == {"helpful", "harmless", "conciseness"} and d["hypervolume"] >= 0
        assert {"spearman", "gain", "gain_ci95"} <= set(d["steering"]["helpful"])
    # judged greedily by default: one prompt's answers differ only through the preference in it
    assert json.loads((out / "eval" / "pro-wic" / "evaluation.json").read_text())["config"]["temperature"] == 0.0
    assert (out / "compare" / "front.png").is_file() and "paired on prompts" in (out / "report.md").read_text()
    assert "read its tag" in (out / "report.md").read_text() and r["arms"]["pro-wic"]["tag_reading"]["replies"] == 8
    assert "(drawn with seed 5)" in (out / "report.md").read_text()
    assert "ric-offline: hypervolume" in capsys.readouterr().out

    stamp = (out / "eval" / "pro-wic" / "evaluation.json").stat().st_mtime_ns
    assert main(args) == 0  # a re-run reuses every finished stage
    assert (out / "eval" / "pro-wic" / "evaluation.json").stat().st_mtime_ns == stamp
    assert "train-wic" not in capsys.readouterr().out


def test_wic_compare_refuses_a_mismatched_orchestrator_before_training(tiny_policy_dir, tiny_orchestrator_dir, tmp_path, capsys):
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import RuleReward

    ens = RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("engaged", "no_refusal")])
    ens.fit_normalization(make_pairs(), progress=False)
    ens.save(tmp_path / "ens")
    out = tmp_path / "wic"
    assert main(["wic-compare", "--policy", tiny_policy_dir, "--ensemble", str(tmp_path / "ens"),
                 "--orchestrator", tiny_orchestrator_dir, "--output_dir", str(out)]) == 2
    assert "do not match the reward ensemble" in capsys.readouterr().err
    assert not out.exists()


def test_wic_compare_refuses_a_judge_trained_on_its_evaluation_prompts(tiny_policy_dir, tiny_rm_dir, tiny_ensemble_dir,
                                                                      tiny_orchestrator_dir, tmp_path, capsys):
    held_out = heldout_file(tmp_path)
    out = tmp_path / "wic"
    assert main(["wic-compare", "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir, "--orchestrator",
                 tiny_orchestrator_dir, "--judge", make_recorded_judge(tiny_rm_dir, tmp_path, [held_out]),
                 "--eval_data", held_out, "--output_dir", str(out)]) == 2
    assert "shares 6 first human turn(s) with the evaluation prompts" in capsys.readouterr().err
    assert not out.exists()


def test_wic_compare_refuses_a_reference_point_of_the_wrong_length(tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    out = tmp_path / "wic"
    assert main(["wic-compare", "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir,
                 "--reference_point", "-1", "-1", "--output_dir", str(out)]) == 2
    assert "reference_point: expected 3 values" in capsys.readouterr().err
    assert not out.exists()


def test_wic_compare_with_expert_data_adds_soups_and_mod_arms_sharing_one_expert_set(
        tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir, data, tmp_path):
    out = tmp_path / "wic"
    three = [str(data)] * 3  # the tiny ensemble's helpful, harmless, conciseness
    args = _small_run(data, out, tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir)
    assert main([*args, "--expert_data", *three, "--expert_eval_data", *three, "--expert_steps", "1"]) == 0
    r = json.loads((out / "wic_comparison.json").read_text())
    assert list(r["arms"]) == ["pro-wic", "ric-online", "pro-wic-offline", "ric-offline", "soups", "mod"]
    soups, mod = r["arms"]["soups"]["compute"], r["arms"]["mod"]["compute"]
    assert soups == mod and soups["sft_steps"] == 3 and soups["sft_tokens"] > 0 and soups["generated"] == 0
    assert json.loads((out / "eval" / "mod" / "evaluation.json").read_text())["method"] == "mod"
    assert set(r["experts"]["heldout_accuracy"]) == {"helpful", "harmless", "conciseness"}
    report = (out / "report.md").read_text()
    assert "soups, mod" in report and "The experts on held-out pairs" in report and f"judged by `{tiny_ensemble_dir}`" in report


def test_wic_compare_refuses_expert_data_for_other_objectives_before_training(
        tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir, tmp_path, capsys):
    out = tmp_path / "wic"
    assert main(["wic-compare", "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir, "--orchestrator",
                 tiny_orchestrator_dir, "--expert_data", "hh-helpful:train", "hh-harmless:train", "--output_dir", str(out)]) == 2
    assert "expert_data: one training-data spec per ensemble objective ['helpful', 'harmless', 'conciseness']" in capsys.readouterr().err
    assert not out.exists()
