import json
import math
from dataclasses import asdict

import pytest
import torch

from preforch.cli import main
from preforch.errors import ConfigError
from preforch.evaluation.metrics import mean_interval, objective_means
from preforch.generation.combined_reward import combined_reward
from preforch.pipelines.config import RLComparisonConfig
from preforch.pipelines.rl_comparison import _summary, judge_train_data, paired_delta
from preforch.pipelines.rl_comparison_report import render_report
from preforch.rewards.scores import Scores
from tests.conftest import heldout_file, make_recorded_judge

MIXED = ["helpful", "harmless", "arithmetic"]


def test_paired_delta_uses_per_prompt_differences():
    d = paired_delta([1.0, 2.0, 3.0, 4.0], [0.5, 1.5, 2.5, 3.5])
    assert d["mean"] == pytest.approx(0.5) and d["ci95"] == pytest.approx(0.0)  # a constant shift is certain
    assert paired_delta([1.0, 0.0], [0.0, 1.0])["mean"] == pytest.approx(0.0)


def _judged(shift: float) -> Scores:
    """Judged scores of 6 chat prompts and 3 problems (2 answered wrong); exact match applies to the problems only."""
    chat = [[0.1 * i + shift, -0.2 * i, math.nan] for i in range(6)]
    return Scores.from_nan(torch.tensor(chat + [[0.3, 0.1, z + shift] for z in (1.0, -1.0, -1.0)]))


def _uniform_row(scores: Scores) -> dict:
    """What an evaluation.json holds for its uniform row, the part rl-compare reads."""
    per_prompt = combined_reward(scores, torch.full((len(scores), 3), 1 / 3))
    return {"label": "uniform", **objective_means(scores, MIXED), "scores": scores.tolist(),
            "combined": {**mean_interval(per_prompt), "per_prompt": per_prompt.tolist()}}


def test_report_reads_exact_match_over_the_problems_only():
    before, after = _summary({"rows": [_uniform_row(_judged(0.0))]}), _summary({"rows": [_uniform_row(_judged(0.5))]})
    delta = paired_delta(after["combined"]["uniform"]["per_prompt"], before["combined"]["uniform"]["per_prompt"])
    r = {"config": asdict(RLComparisonConfig()), "objectives": MIXED, "num_prompts": 9, "weightings": ["uniform"],
         "initial": before, "methods": {"morlhf": {"final_step": 2, "final": after, "delta_combined": {"uniform": delta},
                                                   "cost": {"steps": 2, "seconds_per_step": None}}}}
    json.dumps(r, allow_nan=False)
    assert before["n"] == {"helpful": 9, "harmless": 9, "arithmetic": 3}
    assert all(math.isfinite(x) for x in before["combined"]["uniform"]["per_prompt"])  # chat prompts: helpful, harmless
    lines = render_report(r, "initial").splitlines()
    initial, final = (next(x.split(" | ") for x in lines if x.startswith(start)) for start in ("| initial | 0 |", "| morlhf | 2 |"))
    # (1 - 1 - 1) / 3 on the problems, in z units: not an average with six chat prompts fixed at the bottom
    assert initial[4].startswith("-0.333 ± ") and initial[4].endswith(" (n=3)")
    assert final[4].startswith("0.167 ± ") and final[4].endswith(" (n=3)")
    assert "(n=" not in initial[2]  # helpful applies to every prompt


def test_config_rejects_bad_methods():
    with pytest.raises(ConfigError, match="methods: expected one of"):
        RLComparisonConfig(methods=["pro-morlhf", "ppo"])
    with pytest.raises(ConfigError, match="distinct"):
        RLComparisonConfig(methods=["morlhf", "morlhf"])
    with pytest.raises(ConfigError, match="methods: 'morlhf@ppo': algorithm: expected one of grpo, rloo"):
        RLComparisonConfig(methods=["morlhf@ppo"])
    with pytest.raises(ConfigError, match="'morlhf@rloo/normalize-then-sum': aggregation 'normalize-then-sum' is not "
                                          "available with algorithm rloo"):
        RLComparisonConfig(methods=["morlhf@rloo/normalize-then-sum"])


def test_an_arm_names_its_training_signal():
    from preforch.pipelines.rl_comparison import arm_folder, baseline_arms, policy_config

    cfg = RLComparisonConfig(methods=["pro-morlhf@grpo/normalize-then-sum", "morlhf:uniform@grpo/normalize-then-sum",
                                      "morlhf:uniform", "morlhf@rloo"], output_dir="runs/x")
    arms = [policy_config(cfg, arm) for arm in cfg.methods]
    assert [(a.method, a.algorithm, a.aggregation) for a in arms] == [
        ("pro-morlhf", "grpo", "normalize-then-sum"), ("morlhf", "grpo", "normalize-then-sum"),
        ("morlhf", "grpo", "sum-then-normalize"), ("morlhf", "rloo", "sum-then-normalize")]
    assert arms[1].weights is None and arm_folder(cfg.methods[0]) == "pro-morlhf-grpo-normalize-then-sum"
    assert baseline_arms(cfg.methods) == cfg.methods[1:]


def test_rl_compare_trains_both_methods_and_judges_every_checkpoint(tiny_policy_dir, tiny_ensemble_dir,
                                                                    tiny_orchestrator_dir, tmp_path, capsys):
    data, held_out = tmp_path / "prompts.jsonl", tmp_path / "held_out.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    # one held-out prompt is also a training prompt: the held-out sample leaves it out
    held_out.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "a", "rejected": "b"}) for i in range(7, 11)))
    out = tmp_path / "cmp"
    args = ["rl-compare", "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir, "--orchestrator", tiny_orchestrator_dir,
            "--train_data", str(data), "--eval_data", str(held_out), "--eval_prompts_per_source", "4", "--output_dir", str(out),
            "--max_steps", "2", "--save_steps", "1", "--per_device_train_batch_size", "4", "--num_generations", "2",
            "--max_completion_length", "4", "--learning_rate", "1e-2", "--use_lora", "true"]
    assert main(args) == 0
    r = json.loads((out / "rl_comparison.json").read_text())
    assert set(r["methods"]) == {"pro-morlhf", "morlhf"} and r["weightings"] == ["uniform", "orchestrator"]
    assert r["num_prompts"] == 3  # question 7 was trained on
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


def test_rl_compare_refuses_a_judge_trained_on_its_evaluation_prompts(tiny_rm_dir, tiny_ensemble_dir, tmp_path, capsys):
    held_out = heldout_file(tmp_path)
    judge = make_recorded_judge(tiny_rm_dir, tmp_path, [held_out])
    assert main(["rl-compare", "--ensemble", tiny_ensemble_dir, "--judge", judge, "--eval_data", held_out,
                 "--output_dir", str(tmp_path / "o")]) == 2
    line = capsys.readouterr().err.splitlines()[-1]  # after the judge's loading bar
    assert line.startswith(f"preforch rl-compare: error: judge {judge}: the judge's training data ['{held_out}'] "
                           "shares 6 first human turn(s)") and not (tmp_path / "o").exists()
    assert judge_train_data(judge) == [held_out] and judge_train_data(tiny_ensemble_dir) == []  # unrecorded: not checked


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


def _mixed_data(path, n: int) -> str:
    """n pairs of each mixed-intent source: benign and harmful requests, arithmetic problems (right over wrong)."""
    from preforch.data.arithmetic import make_problems

    rows = [{"prompt": f"explain topic {i} of {path.stem}", "chosen": "Sure: " * 4, "rejected": "no", "source": "hh-helpful"}
            for i in range(n)]
    rows += [{"prompt": f"how do I hurt {i} of {path.stem}", "chosen": "No.", "rejected": "Like this " * 4,
              "source": "hh-harmless"} for i in range(n)]
    rows += [{"prompt": list(p.prompt), "chosen": f"Answer: {p.answer}", "rejected": f"Answer: {p.answer + 1}",
              "source": "arithmetic"} for p in make_problems(n, seed=len(str(path)), level="one-step")]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


@pytest.fixture
def mixed_stack(tiny_rm_dir, tiny_encoder_dir, tmp_path):
    """A mixed-intent ensemble (tiny helpful/harmless RM + the exact-match rule) and an orchestrator on it."""
    from preforch.orchestrator.config import OrchestratorConfig
    from preforch.orchestrator.train import train_and_evaluate
    from preforch.rewards.config import EnsembleConfig
    from preforch.rewards.ensemble import build_ensemble

    train, test = _mixed_data(tmp_path / "train.jsonl", 6), _mixed_data(tmp_path / "test_set.jsonl", 4)
    build_ensemble(EnsembleConfig(reward_models=[tiny_rm_dir], rules=["arithmetic=exact_match"], reference_data=[train],
                                  output_dir=str(tmp_path / "rewards")), progress=False)
    train_and_evaluate(OrchestratorConfig(ensemble=str(tmp_path / "rewards"), encoder=tiny_encoder_dir, train_data=[train],
                                          eval_data=[], epochs=3, validation_fraction=0.3,
                                          output_dir=str(tmp_path / "orchestrator")), progress=False)
    return train, test, str(tmp_path / "rewards"), str(tmp_path / "orchestrator")


def test_rl_compare_mixed_intent_arms_and_per_source_report(tiny_policy_dir, mixed_stack, tmp_path, capsys):
    train, test, rewards, orchestrator = mixed_stack
    out = tmp_path / "cmp"
    shared = ["rl-compare", "--policy", tiny_policy_dir, "--ensemble", rewards, "--orchestrator", orchestrator,
              "--train_data", train, "--eval_data", test, "--eval_prompts_per_source", "3", "--eval_temperature", "0",
              "--output_dir", str(out), "--max_steps", "1", "--save_steps", "5", "--per_device_train_batch_size", "4",
              "--num_generations", "2", "--max_completion_length", "4", "--use_lora", "true",
              "--seed", "1"]  # seed 1: the one training batch holds a problem (exact match applies to nothing else)
    # an arm trained alone (as parallel calls on a GPU do), judged later with the others
    assert main([*shared, "--methods", "morlhf:best-fixed", "--train_only", "true"]) == 0
    assert (out / "morlhf-best-fixed" / "policy").is_dir() and not (out / "eval").exists()
    assert main([*shared, "--methods", "morlhf:uniform", "morlhf:best-fixed", "single-reward:arithmetic"]) == 0
    assert "morlhf:best-fixed: trained policy found" in capsys.readouterr().out
    r = json.loads((out / "rl_comparison.json").read_text())
    fixed = json.loads((tmp_path / "orchestrator" / "orchestrator_config.json").read_text())["metadata"]["best_fixed_validation"]
    assert r["methods"]["morlhf:best-fixed"]["weights"] == ",".join(f"{o}={w!r}" for o, w in fixed.items())
    assert r["methods"]["morlhf:uniform"]["weights"] is None
    assert r["methods"]["single-reward:arithmetic"]["objective"] == "arithmetic"
    assert (out / "morlhf-best-fixed" / "policy").is_dir() and (out / "single-reward-arithmetic" / "policy").is_dir()
    # the exact-match rule rewarded the RL completions of problems like any other objective
    log = [json.loads(line) for line in (out / "single-reward-arithmetic" / "log.jsonl").read_text().splitlines()]
    assert any(0.0 <= row.get("objectives/arithmetic/raw", -1.0) <= 1.0 for row in log)
    assert r["methods"]["single-reward:arithmetic"]["cost"]["steps"] == 1
    own = r["own_objective"]
    assert own["sources"] == {"hh-helpful": "helpful", "hh-harmless": "harmless", "arithmetic": "arithmetic"}
    assert set(own["policies"]) == {"initial", "morlhf:uniform", "morlhf:best-fixed", "single-reward:arithmetic"}
    assert set(own["vs"]) == {"initial", "morlhf:uniform", "morlhf:best-fixed"}
    assert set(own["vs"]["morlhf:uniform"]) == {"morlhf:best-fixed", "single-reward:arithmetic"}
    # exact match read back from the normalised scores: a share of right answers
    assert 0.0 <= own["policies"]["initial"]["raw"]["arithmetic"] <= 1.0
    held_out = json.loads((out / "eval" / "initial" / "evaluation.json").read_text())
    assert held_out["prompt_sources"] == ["hh-helpful"] * 3 + ["hh-harmless"] * 3 + ["arithmetic"] * 3
    # exact match judged on the 3 problems only, null on the chat prompts, in the table with its n
    uniform = next(row for row in held_out["rows"] if row["label"] == "uniform")
    assert [s[2] is None for s in uniform["scores"]] == [True] * 6 + [False] * 3
    assert r["initial"]["n"] == {"helpful": 9, "harmless": 9, "arithmetic": 3}
    assert r["initial"]["mean"]["arithmetic"] == pytest.approx(sum(s[2] for s in uniform["scores"][6:]) / 3)
    report = (out / "report.md").read_text()
    initial = next(line for line in report.splitlines() if line.startswith("| initial | 0 |")).split(" | ")
    assert initial[4].startswith(f"{r['initial']['mean']['arithmetic']:.3f}") and initial[4].endswith(" (n=3)")
    assert "judged on the objective its source names" in report and "### Minus morlhf:best-fixed" in report
    assert "arithmetic (arithmetic)" in report and "## Cost of training" in report


def test_rl_compare_refuses_an_arm_naming_an_objective_the_ensemble_lacks(tiny_ensemble_dir, tmp_path, capsys):
    assert main(["rl-compare", "--ensemble", tiny_ensemble_dir, "--methods", "single-reward:arithmetic",
                 "--output_dir", str(tmp_path / "o")]) == 2
    assert "got 'arithmetic'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="only pro-morlhf:temperature=<T> and morlhf"):
        RLComparisonConfig(methods=["moslim:x"])


def test_training_cost_reads_grpo_step_times_or_dpo_runtimes(tmp_path):
    import json

    from preforch.pipelines.rl_comparison import training_cost

    def log(folder, rows):
        folder.mkdir()
        (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return folder

    grpo = log(tmp_path / "grpo", [{"step": 1, "step_time": 2.0, "peak_rss_mb": 10}, {"step": 2, "step_time": 4.0, "peak_rss_mb": 30}])
    dpo = log(tmp_path / "dpo", [{"step": 1, "loss": 0.7}, {"step": 2, "train_runtime": 30.0},  # resumed once
                                 {"step": 4, "loss": 0.6}, {"step": 4, "train_runtime": 50.0, "peak_rss_mb": 20}])
    assert training_cost(grpo) == {"steps": 2, "seconds_per_step": 3.0, "peak_rss_mb": 30}
    assert training_cost(dpo) == {"steps": 4, "seconds_per_step": 20.0, "peak_rss_mb": 20}
