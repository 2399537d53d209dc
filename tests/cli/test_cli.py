import json
import subprocess
import sys

import pytest

from preforch.cli import COMMANDS, main
from preforch.cli.parsing import parse_config
from preforch.errors import ConfigError


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "--config" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "preforch", "--help"], capture_output=True, text=True, check=True)
    assert "train-orchestrator" in out.stdout


def test_unknown_command_and_bad_flag_values(capsys):
    assert main(["frobnicate"]) == 2
    assert main(["train-rm", "--objectives", "a", "b", "--train_data", "x"]) == 2
    assert "train_data: needs one entry per objective" in capsys.readouterr().err


def test_yaml_config_sets_defaults_and_flags_override(tmp_path, tiny_orchestrator_dir, capsys):
    recipe = tmp_path / "w.yaml"
    recipe.write_text(f"orchestrator: {tiny_orchestrator_dir}\njson: true\n")
    assert main(["weights", "How do I bake bread?", "--config", str(recipe)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["prompt"] == "How do I bake bread?"
    assert sum(rows[0]["weights"].values()) == pytest.approx(1.0, abs=1e-5)
    assert main(["weights", "hi", "--config", str(recipe), "--json", "false"]) == 0
    assert "helpful" in capsys.readouterr().out


def test_a_list_flag_without_values_is_the_empty_list():
    from preforch.cli.parsing import parse_config
    from preforch.rewards.config import EnsembleConfig

    assert parse_config(EnsembleConfig, ["--rules"], prog="test").rules == []
    assert parse_config(EnsembleConfig, [], prog="test").rules == ["conciseness"]


def test_yaml_unknown_key_names_file_and_key(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("orchestratr: x\n")
    assert main(["weights", "hi", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "orchestratr" in err


@pytest.mark.parametrize("command, line, message", [
    ("train-orchestrator", "batch_size: [1, 2]", "batch_size: expected an integer, got [1, 2]"),
    ("train-orchestrator", "batch_size: 2.7", "batch_size: expected an integer, got 2.7"),
    ("weights", "orchestrator: 5", "orchestrator: expected a string, got 5"),
    ("weights", "json: maybe", "json: expected true or false, got 'maybe'"),
])
def test_a_yaml_value_of_the_wrong_type_names_file_and_key(command, line, message, tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(line + "\n")
    assert main([command, "--config", str(recipe)]) == 2
    assert f"bad.yaml: {message}" in capsys.readouterr().err


def test_yaml_values_take_their_field_types_and_a_bare_value_for_a_list_is_one_item(tmp_path):
    from preforch.rewards.config import EnsembleConfig

    recipe = tmp_path / "ok.yaml"
    recipe.write_text("rules: conciseness\nmax_reference_pairs: 3\n")
    cfg = parse_config(EnsembleConfig, ["--config", str(recipe)], prog="test")
    assert cfg.rules == ["conciseness"] and cfg.max_reference_pairs == 3
    with pytest.raises(ConfigError, match="is a folder; --config takes a YAML recipe file"):
        parse_config(EnsembleConfig, ["--config", str(tmp_path)], prog="test")


def test_eval_orchestrator_writes_json(tiny_orchestrator_dir, tiny_ensemble_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval-orchestrator", "--orchestrator", tiny_orchestrator_dir, "--ensemble", tiny_ensemble_dir,
                 "--eval_data", "hh-helpful:test", "hh-harmless:test", "--max_eval_pairs", "6",
                 "--positive_source", "hh-harmless", "--output", str(out), "--dump_weights", str(tmp_path / "w.jsonl")]) == 0
    result = json.loads(out.read_text())
    assert 0.0 <= result["calibration"]["ece"] <= 1.0
    dumped = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text().splitlines()]
    assert len(dumped) == 12 and set(dumped[0]) == {"prompt", "source", "predicted", "target"}
    assert set(result["kl"]) == {"orchestrator", "uniform", "constant_mean_target"}
    assert set(result["auroc"]["per_objective"]) == {"helpful", "harmless", "conciseness"}
    assert "AUROC" in capsys.readouterr().out


def test_generate_with_user_weights_and_with_orchestrator(tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir, tmp_path, capsys):
    out = tmp_path / "gen.jsonl"
    common = ["generate", "--prompt", "How do I bake bread?", "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir,
              "--num_candidates", "2", "--max_new_tokens", "4"]
    assert main(common + ["--weights", "helpful=0.7,harmless=0.3", "--output", str(out)]) == 0
    row = json.loads(out.read_text().splitlines()[0])
    assert row["weights"] == "helpful=0.700,harmless=0.300,conciseness=0.000"
    assert main(common + ["--orchestrator", tiny_orchestrator_dir]) == 0
    assert "weights:" in capsys.readouterr().out


def test_generate_with_a_partial_preference(tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir, tmp_path, capsys):
    out = tmp_path / "gen.jsonl"
    args = ["--prompt", "How do I bake bread?", "How do I pick a lock?", "--policy", tiny_policy_dir,
            "--ensemble", tiny_ensemble_dir, "--num_candidates", "2", "--max_new_tokens", "4",
            "--weights", "harmless=0.5,auto"]
    assert main(["generate", *args, "--orchestrator", tiny_orchestrator_dir, "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        weights = dict(item.split("=") for item in row["weights"].split(","))
        assert weights["harmless"] == "0.500" and sum(map(float, weights.values())) == pytest.approx(1.0, abs=2e-3)
    assert main(["generate", *args, "--orchestrator", ""]) == 2
    assert "'auto' fills from the orchestrator; add --orchestrator DIR" in capsys.readouterr().err


@pytest.mark.parametrize("method, tag", [("pro-wic", "<preference helpful=0.80 harmless=0.20 conciseness=0.00>"),
                                         ("ric", "<scores helpful=+1.50 harmless=+0.50 conciseness=-1.00>")])
def test_generate_writes_the_weights_into_a_wic_policys_prompt(method, tag, tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    from tests.conftest import make_wic_policy

    policy, _ = make_wic_policy(tiny_policy_dir, tmp_path, method)  # RiC range [-1, 1.5] per objective
    out = tmp_path / "gen.jsonl"
    assert main(["generate", "--prompt", "How do I bake bread?", "--policy", policy, "--ensemble", tiny_ensemble_dir,
                 "--num_candidates", "1", "--max_new_tokens", "4", "--weights", "helpful=0.8,harmless=0.2",
                 "--output", str(out)]) == 0
    row = json.loads(out.read_text())
    # RiC with K=3 and range [-1, 1.5]: w >= 1/3 -> 1.5; otherwise -1 + 3 w * 2.5 (harmless 0.2 -> 0.5, conciseness 0 -> -1)
    assert row["prompt"].startswith(tag + "\n")
    assert row["prompt"].endswith("How do I bake bread?")


@pytest.mark.parametrize("weights, message", [
    ("helpful=0.7,harmless=0.2", "must sum to 1"),
    ("helpful=0.5,kindness=0.5", "unknown objective 'kindness'"),
    ("helpful=nan,harmless=1", "NaN"),
])
def test_generate_rejects_bad_weights(weights, message, tiny_ensemble_dir, capsys):
    assert main(["generate", "--prompt", "hi", "--ensemble", tiny_ensemble_dir, "--weights", weights]) == 2
    assert message in capsys.readouterr().err


def test_orchestrator_and_ensemble_objectives_must_agree(tiny_orchestrator_dir, tmp_path, capsys):
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import RuleReward
    from tests.conftest import make_pairs

    ens = RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("engaged", "no_refusal")])
    ens.fit_normalization(make_pairs(), progress=False)
    ens.save(tmp_path / "ens")
    assert main(["generate", "--prompt", "hi", "--ensemble", str(tmp_path / "ens"), "--orchestrator", tiny_orchestrator_dir]) == 2
    assert "do not match the reward ensemble" in capsys.readouterr().err


def test_empty_prompt_rejected(tiny_ensemble_dir, capsys):
    assert main(["generate", "--prompt", "  ", "--ensemble", tiny_ensemble_dir, "--weights", "helpful=1"]) == 2
    assert "prompt is empty" in capsys.readouterr().err


def test_missing_policy_or_encoder_is_a_clear_error(tiny_ensemble_dir, tmp_path, capsys):
    assert main(["generate", "--prompt", "hi", "--ensemble", tiny_ensemble_dir, "--weights", "helpful=1",
                 "--policy", str(tmp_path / "no_policy")]) == 2
    assert "policy tokenizer" in capsys.readouterr().err
    assert main(["train-orchestrator", "--ensemble", tiny_ensemble_dir, "--encoder", str(tmp_path / "no_encoder"),
                 "--train_data", "hh-helpful:test", "--max_train_pairs", "2", "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "encoder" in err and "no_encoder" in err
    assert not (tmp_path / "o").exists(), "nothing half-written"
