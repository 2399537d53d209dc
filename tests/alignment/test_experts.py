import json

import pytest
import torch

from preforch.alignment.config import ExpertsConfig
from preforch.alignment.implicit_reward import implicit_reward_accuracy, length_balanced_accuracy
from preforch.cli import main
from preforch.errors import ConfigError, ObjectiveMismatchError
from preforch.evaluation.harness import run_evaluation
from preforch.generation.expert_set import ExpertSet
from preforch.serving.policies.folder import load_preference_policy
from tests.conftest import eval_config, make_experts, make_pairs, read_card


def _data(tmp_path):
    """Pairs of each of two objectives in their own file: 'harmless' refuses unsafe asks, 'helpful' explains."""
    files = {}
    for objective, source in (("helpful", "benign"), ("harmless", "unsafe")):
        files[objective] = tmp_path / f"{objective}.jsonl"
        files[objective].write_text("".join(json.dumps({"prompt": p.prompt[-1]["content"], "chosen": p.chosen,
                                                        "rejected": p.rejected}) + "\n"
                                            for p in make_pairs(16) if p.source == source))
    return [str(files["helpful"]), str(files["harmless"])]


def _args(tiny_policy_dir, data, out, *extra):
    return ["train-experts", "--base_model", tiny_policy_dir, "--objectives", "helpful", "harmless",
            "--train_data", *data, "--eval_data", *data, "--output_dir", str(out), "--max_eval_pairs", "4",
            "--per_device_train_batch_size", "4", "--lora_r", "4", "--lora_alpha", "8", *extra]


def test_train_experts_trains_one_dpo_adapter_per_objective_and_judges_each(tiny_policy_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    out = tmp_path / "experts"
    assert main(_args(tiny_policy_dir, _data(tmp_path), out, "--max_steps", "8", "--learning_rate", "5e-3",
                      "--max_length", "96")) == 0
    printed = capsys.readouterr().out
    assert "held-out implicit-reward accuracy" in printed and "--method soups" in printed
    record = json.loads((out / "experts.json").read_text())
    assert record["objectives"] == ["helpful", "harmless"] and record["method"] == "dpo"
    assert record["experts"] == {"helpful": "experts/helpful", "harmless": "experts/harmless"}
    for objective in ("helpful", "harmless"):
        weights = load_file(out / "experts" / objective / "adapter_model.safetensors")
        assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())  # B starts at 0: it trained
        training = record["training"][objective]
        assert training["steps"] == 8 and training["last_loss"] < training["first_loss"]
        row = record["heldout_accuracy"][objective]
        assert set(row) == {"helpful", "harmless"} and all(0 <= cell["accuracy"] <= 1 for cell in row.values())
    assert record["heldout_pairs"] == {"helpful": 4, "harmless": 4}
    meta, held_out, card, code = read_card(out)  # the set's model card, its code loading the experts with peft
    assert meta["library_name"] == "peft" and "rewarded-soups" in meta["tags"] and "--method soups" in card
    assert "DPO on its objective's preference pairs" in card and "helpful from" in card
    assert held_out["expert harmless on harmless pairs: implicit-reward accuracy (held out)"] == pytest.approx(
        record["heldout_accuracy"]["harmless"]["harmless"]["accuracy"], abs=1e-4)
    snippet = {"FOLDER": str(out)}
    exec(code, snippet)
    assert snippet["model"].active_adapter == "soup" and set(snippet["model"].peft_config) == {"helpful", "harmless", "soup"}
    experts = ExpertSet.read(out)
    assert experts.objectives == ("helpful", "harmless")
    policy = load_preference_policy(str(out))  # an experts folder serves as soups unless told otherwise
    assert policy.kind == "soups" and len(policy.respond([({"role": "user", "content": "hi"},)], torch.tensor([[0.5, 0.5]]))) == 1


def test_train_experts_with_grpo_keeps_each_adapter(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    out = tmp_path / "experts"
    data = _data(tmp_path)
    assert main(_args(tiny_policy_dir, data, out, "--method", "grpo", "--ensemble", tiny_ensemble_dir, "--max_steps", "1",
                      "--num_generations", "2", "--max_completion_length", "4", "--learning_rate", "1e-2")) == 0
    experts = ExpertSet.read(out)
    assert experts.method == "grpo" and all((a / "adapter_model.safetensors").is_file() for a in experts.adapters)
    assert not (out / "experts" / "helpful" / "model.safetensors").exists()  # the adapter, not a merged model


@pytest.mark.parametrize("extra, error", [
    (["--method", "grpo"], "method grpo: needs --ensemble"),
    (["--method", "grpo", "--ensemble", "ENSEMBLE", "--objectives", "helpful", "kindness"], "no such reward in ensemble"),
    (["--objectives", "helpful"], "train_data: needs one entry per objective"),
    (["--objectives", "helpful", "helpful"], "expected distinct objective names"),
    (["--train_data", "missing.jsonl", "missing.jsonl"], "missing.jsonl: no such file"),
    (["--base_model", "/no/such/model"], "no such folder"),
])
def test_bad_train_experts_input_fails_before_writing_anything(extra, error, tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    out = tmp_path / "experts"
    extra = [tiny_ensemble_dir if e == "ENSEMBLE" else e for e in extra]
    assert main(_args(tiny_policy_dir, _data(tmp_path), out, "--max_steps", "1") + extra) == 2
    assert error in capsys.readouterr().err
    assert not out.exists()


def test_expert_sets_that_do_not_fit_together_are_refused_naming_the_file_and_field(tiny_policy_dir, tmp_path):
    folder = tmp_path / "set"
    make_experts(tiny_policy_dir, folder, objectives=("helpful", "harmless"))
    file = folder / "experts.json"
    data = json.loads(file.read_text())
    file.write_text(json.dumps({**data, "objectives": ["harmless", "helpful"]}))
    with pytest.raises(ObjectiveMismatchError, match=r"experts.json: field 'experts' has adapters for \['helpful', 'harmless'\]"):
        ExpertSet.read(folder)
    file.write_text(json.dumps({**data, "base_model": str(tmp_path)}))
    with pytest.raises(ConfigError, match=r"helpful/adapter_config.json: field 'base_model_name_or_path' is .* field "
                                          "'base_model' is .*: experts combine only on the one base model"):
        ExpertSet.read(folder)
    config = folder / "experts" / "harmless" / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "base_model_name_or_path": "other/model"}))
    file.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="harmless/adapter_config.json: field 'base_model_name_or_path' is 'other/model'"):
        ExpertSet.read(folder)
    file.write_text(json.dumps({k: v for k, v in data.items() if k != "experts"}))
    with pytest.raises(ConfigError, match="experts.json: field 'experts' missing"):
        ExpertSet.read(folder)


def test_an_expert_set_with_other_objectives_than_the_ensemble_is_refused_before_anything_is_written(
        tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    experts = make_experts(tiny_policy_dir, tmp_path / "two", objectives=("helpful", "harmless"))
    for method in ("soups", "mod"):
        with pytest.raises(ObjectiveMismatchError, match=f"{method} policy .*two: objectives .* do not match the reward ensemble's"):
            run_evaluation(eval_config(tmp_path, experts, tiny_ensemble_dir, method=method))
        assert not (tmp_path / "eval").exists()
        assert main(["generate", "--prompt", "hi", "--policy", experts, "--method", method, "--ensemble", tiny_ensemble_dir,
                     "--weights", "helpful=1", "--output", str(tmp_path / "gen.jsonl")]) == 2
        assert "do not match the reward ensemble's" in capsys.readouterr().err
        assert not (tmp_path / "gen.jsonl").exists()


def test_implicit_reward_accuracy():
    chosen, rejected = torch.tensor([-1.0, -5.0, -2.0]), torch.tensor([-3.0, -1.0, -2.0])
    ref = torch.tensor([-2.0, -2.0, -2.0])
    r = implicit_reward_accuracy(chosen, rejected, ref, ref, beta=0.5)
    assert r["accuracy"] == pytest.approx(1 / 3)  # pair 1 wins, pair 2 loses, pair 3 ties (counts as wrong)
    assert r["margin"] == pytest.approx(0.5 * (2 - 4 + 0) / 3)


def test_length_balanced_accuracy_separates_a_length_preference_from_the_rest():
    chosen_tokens, rejected_tokens = torch.tensor([5, 5, 5, 9, 9, 7]), torch.tensor([9, 9, 9, 5, 5, 7])
    shorter_wins = torch.tensor([1, 1, 1, 0, 0, 1])  # always prefers the shorter reply (the tie, pair 6, left out)
    r = length_balanced_accuracy(shorter_wins, chosen_tokens, rejected_tokens)
    assert (r["accuracy_chosen_shorter"], r["accuracy_chosen_longer"], r["length_balanced_accuracy"]) == (1.0, 0.0, 0.5)
    assert (r["pairs_chosen_shorter"], r["pairs_chosen_longer"]) == (3, 2)
    r = length_balanced_accuracy(torch.tensor([1, 0, 0, 1, 1, 0]), chosen_tokens, rejected_tokens)
    assert r["length_balanced_accuracy"] == pytest.approx((1 / 3 + 1) / 2)
    r = length_balanced_accuracy(torch.tensor([1, 0]), torch.tensor([5, 5]), torch.tensor([9, 9]))
    assert r["accuracy_chosen_longer"] is None and r["length_balanced_accuracy"] == 0.5  # one stratum only


def test_experts_config_errors():
    with pytest.raises(ConfigError, match="method: expected one of dpo, grpo"):
        ExpertsConfig(method="ppo")
    with pytest.raises(ConfigError, match="cannot name an expert's folder"):
        ExpertsConfig(objectives=["a/b", "c"])


@pytest.mark.slow
def test_train_experts_under_torchrun_writes_one_set_from_one_rank(tiny_policy_dir, tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "experts"
    cmd = [str(torchrun) if torchrun.exists() else shutil.which("torchrun"), "--standalone", "--nproc_per_node", "2",
           "-m", "preforch", *_args(tiny_policy_dir, _data(tmp_path), out, "--max_steps", "2", "--max_length", "96")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("held-out implicit-reward accuracy") == 1  # one rank reports
    record = json.loads((out / "experts.json").read_text())
    assert record["training"]["helpful"]["steps"] == 2 and set(record["heldout_accuracy"]) == {"helpful", "harmless"}
    assert ExpertSet.read(out).objectives == ("helpful", "harmless")
