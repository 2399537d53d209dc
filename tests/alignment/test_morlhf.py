import json
import math

import pytest
import torch

from preforch.alignment.config import PolicyConfig
from preforch.alignment.morlhf import method_weights
from preforch.alignment.rewards import CombinedReward
from preforch.cli import main
from preforch.errors import ConfigError, DataError, WeightsError
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.normalization import ZScore
from preforch.rewards.sources import HFRewardModel, RuleReward


def test_combined_reward_uses_stored_normalisation_and_weights(tiny_ensemble_dir):
    ens = RewardEnsemble.load(tiny_ensemble_dir)
    reward = CombinedReward(ens)
    logged = {}
    prompts = [[{"role": "user", "content": "hi"}]] * 2
    completions = [[{"role": "assistant", "content": "short"}], [{"role": "assistant", "content": "a much longer reply " * 5}]]
    only_concise = [[0.0, 0.0, 1.0]] * 2
    out = reward(prompts, completions, weights=only_concise, log_metric=lambda k, v: logged.__setitem__(k, v))
    expected = ens.normalize(ens.score_raw([tuple(p) for p in prompts], ["short", "a much longer reply " * 5]))[:, 2]
    assert out == pytest.approx(expected.tolist()) and out[0] > out[1]
    assert {"objectives/helpful/raw", "objectives/conciseness/normalized", "objectives/harmless/weight",
            "objectives/combined"} <= set(logged)
    with pytest.raises(WeightsError, match="sum to 1"):
        reward(prompts, completions, weights=[[0.5, 0.0, 0.0]] * 2)


def _with_exact_match(tiny_rm_dir) -> RewardEnsemble:
    """helpful + harmless (tiny RM) + arithmetic (exact match: None on a prompt that is no problem), hand-set
    statistics: the rule's z-score maps right to +1 and wrong to -1."""
    return RewardEnsemble([HFRewardModel(tiny_rm_dir, device="cpu"), RuleReward("arithmetic", "exact_match")],
                          ZScore(torch.tensor([0.0, 0.0, 0.5]), torch.tensor([1.0, 1.0, 0.5]), 10))


def test_combined_reward_skips_an_objective_that_does_not_apply_and_keeps_the_others_signal(tiny_rm_dir):
    """Before, a prompt exact match cannot judge scored 0 ("wrong"), a fixed penalty of half the reward here; with
    None it would have been NaN. Now the weights of the objectives that apply are renormalised."""
    ens = _with_exact_match(tiny_rm_dir)
    reward, logged = CombinedReward(ens), {}
    chat = [{"role": "user", "content": "hi"}]
    replies = ["Sure, glad to help with that!", "No."]
    w = [[0.25, 0.25, 0.5]] * 2
    out = reward([chat] * 2, [[{"role": "assistant", "content": r}] for r in replies], weights=w,
                 log_metric=logged.__setitem__)
    hh = ens.score([tuple(chat)] * 2, replies)
    assert not hh.applies[:, 2].any()
    assert out == pytest.approx((0.5 * hh.values[:, 0] + 0.5 * hh.values[:, 1]).tolist())  # weights 1/4, 1/4 -> 1/2, 1/2
    assert all(math.isfinite(r) for r in out) and out[0] != out[1]
    assert "objectives/arithmetic/raw" not in logged and "objectives/helpful/normalized" in logged  # none applies


def test_combined_reward_reads_the_datasets_solution_and_logs_means_over_where_each_objective_applies(tiny_rm_dir):
    reward, logged = CombinedReward(_with_exact_match(tiny_rm_dir)), {}
    prompts = [[{"role": "user", "content": "hi"}]] * 2 + [[{"role": "user", "content": "What is six times seven?"}]] * 2
    replies = ["Hello!", "Hi there.", "Answer: 42", "Answer: 41"]
    out = reward(prompts, [[{"role": "assistant", "content": r}] for r in replies], weights=[[0.0, 0.0, 1.0]] * 4,
                 solution=[None, None, "42", "42"], source=["chat"] * 4, log_metric=logged.__setitem__)
    assert out == pytest.approx([0.0, 0.0, 1.0, -1.0])  # chat: nothing it weighs applies, every reply ties
    assert logged["objectives/arithmetic/raw"] == 0.5 and logged["objectives/arithmetic/normalized"] == 0.0  # 2 of 4
    assert logged["objectives/arithmetic/weight"] == 1.0 and logged["objectives/helpful/weight"] == 0.0
    only_rule = RewardEnsemble([RuleReward("arithmetic", "exact_match")], ZScore(torch.tensor([0.5]), torch.tensor([0.5]), 10))
    with pytest.raises(DataError, match="no objective applies.*prompt 'hi'"):
        CombinedReward(only_rule)(prompts[:1], ["Hello!"], weights=[[1.0]])


def test_method_weights(tiny_ensemble_dir, tiny_orchestrator_dir, pairs):
    ens = RewardEnsemble.load(tiny_ensemble_dir)
    uni = method_weights(PolicyConfig(method="morlhf", ensemble=tiny_ensemble_dir), ens, pairs.prompts)
    assert torch.allclose(uni, torch.full_like(uni, 1 / 3))
    fixed = method_weights(PolicyConfig(method="morlhf", weights="helpful=0.8,harmless=0.2"), ens, pairs.prompts[:2])
    assert fixed[1].tolist() == pytest.approx([0.8, 0.2, 0.0])
    one = method_weights(PolicyConfig(method="single-reward", objective="harmless"), ens, pairs.prompts[:2])
    assert one[0].tolist() == [0.0, 1.0, 0.0]
    pro = method_weights(PolicyConfig(orchestrator=tiny_orchestrator_dir), ens, pairs.prompts)
    assert pro.shape == (len(pairs), 3) and torch.allclose(pro.sum(-1), torch.ones(len(pairs)))
    partial = method_weights(PolicyConfig(method="morlhf", weights="harmless=0.5,auto", orchestrator=tiny_orchestrator_dir),
                             ens, pairs.prompts)
    assert (partial[:, 1] == 0.5).all() and torch.allclose(partial[:, 0] / partial[:, 2], pro[:, 0] / pro[:, 2])
    with pytest.raises(ConfigError, match="single-reward needs --objective"):
        method_weights(PolicyConfig(method="single-reward", objective="kindness"), ens, pairs.prompts)
    with pytest.raises(WeightsError, match="unknown objective"):
        method_weights(PolicyConfig(method="morlhf", weights="kindness=1"), ens, pairs.prompts)


def test_config_errors():
    with pytest.raises(ConfigError, match="algorithm: expected one of grpo, rloo"):
        PolicyConfig(algorithm="ppo")
    with pytest.raises(ConfigError, match="aggregation: expected one of sum-then-normalize, normalize-then-sum, got 'mean'"):
        PolicyConfig(aggregation="mean")
    with pytest.raises(ConfigError, match="aggregation: normalize-then-sum is not available with --algorithm rloo"):
        PolicyConfig(algorithm="rloo", aggregation="normalize-then-sum")
    with pytest.raises(ConfigError, match="multiple of num_generations"):
        PolicyConfig(per_device_train_batch_size=6, num_generations=4)


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "grpo:normalize-then-sum"])
def test_train_policy_on_a_tiny_model_changes_parameters_and_logs_objectives(
        algorithm, tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    out = tmp_path / "run"
    algorithm, _, aggregation = algorithm.partition(":")
    assert main(["train-policy", "--algorithm", algorithm, "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir,
                 "--orchestrator", tiny_orchestrator_dir, "--train_data", str(data), "--output_dir", str(out),
                 "--max_steps", "2", "--per_device_train_batch_size", "4", "--num_generations", "2",
                 "--max_completion_length", "4", "--learning_rate", "1e-2", "--save_steps", "1",
                 *(["--aggregation", aggregation] if aggregation else [])]) == 0
    before = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    after = AutoModelForCausalLM.from_pretrained(out / "policy")
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # one reward function per objective under normalize-then-sum (TRL logs each), the combined reward otherwise
    key = "rewards/harmless/mean" if aggregation else "objectives/harmless/normalized"
    assert any(key in row for row in logs)
    assert all(row["peak_rss_mb"] > 50 for row in logs), "every log line carries the peak memory so far"
    assert (out / "checkpoint-2").is_dir()


def _args(tiny_policy_dir, tiny_ensemble_dir, data, out, *extra):
    return ["train-policy", "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir, "--method", "morlhf",
            "--train_data", str(data), "--output_dir", str(out), "--per_device_train_batch_size", "4",
            "--num_generations", "2", "--max_completion_length", "4", "--save_steps", "1", *extra]


def test_resume_continues_from_the_saved_step(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"q {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    out = tmp_path / "run"
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, data, out, "--max_steps", "2")) == 0
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, data, out, "--max_steps", "3", "--resume", "true")) == 0
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert 3 in steps and steps.count(1) == 1, "resumed run must not redo steps 1-2"
    assert (out / "checkpoint-3").is_dir()


@pytest.mark.parametrize("extra, message", [
    (["--weights", "helpful=0.7,harmless=0.2"], "must sum to 1"),
    (["--weights", "kindness=1"], "unknown objective"),
    (["--resume", "true"], "no checkpoint"),
    (["--max_prompt_tokens", "-1"], "max_prompt_tokens: must be >= 0"),
])
def test_bad_input_fails_before_writing_anything(extra, message, tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    out = tmp_path / "run"
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, data, out, "--max_steps", "1", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir()), "nothing half-written"


def test_prompts_missing_and_orchestrator_mismatch(tiny_policy_dir, tiny_orchestrator_dir, tmp_path, capsys):
    from preforch.rewards.sources import RuleReward
    from tests.conftest import make_pairs

    bad = tmp_path / "noprompt.jsonl"
    bad.write_text(json.dumps({"text": "hello"}) + "\n")
    ens = RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("engaged", "no_refusal")])
    ens.fit_normalization(make_pairs(), progress=False)
    ens.save(tmp_path / "ens")
    base = ["train-policy", "--policy", tiny_policy_dir, "--ensemble", str(tmp_path / "ens"), "--output_dir", str(tmp_path / "o")]
    assert main(base + ["--method", "morlhf", "--train_data", str(bad)]) == 2
    assert "missing field" in capsys.readouterr().err
    assert main(base + ["--orchestrator", tiny_orchestrator_dir, "--train_data", "hh-helpful:test", "--max_prompts", "2"]) == 2
    assert "do not match the reward ensemble" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_train_policy_under_torchrun_two_processes(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"q {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else shutil.which("torchrun"), "--standalone", "--nproc_per_node", "2",
           "-m", "preforch", *_args(tiny_policy_dir, tiny_ensemble_dir, data, tmp_path / "run", "--max_steps", "2")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("policy saved to") == 1
    assert (tmp_path / "run" / "policy" / "config.json").is_file()


def test_plot_logs_draws_a_metric_from_train_policy_logs(tmp_path, capsys):
    for name, rewards in {"pro": [0.1, 0.3, 0.5], "fixed": [0.1, 0.2, 0.25]}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.jsonl").write_text("\n".join(
            json.dumps({"step": i + 1, "objectives/combined": r, "loss": 0.1}) for i, r in enumerate(rewards)))
    png = tmp_path / "curve.png"
    assert main(["plot-logs", str(tmp_path / "pro"), str(tmp_path / "fixed"), "--output", str(png)]) == 0
    assert png.stat().st_size > 0
    assert main(["plot-logs", str(tmp_path / "pro"), "--metric", "nope", "--output", str(png)]) == 2
    assert "never logged" in capsys.readouterr().err
