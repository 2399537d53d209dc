"""Malformed inputs across commands (issue 15): text that is not UTF-8, JSON of the wrong type, truncated
weights files, missing folders. Each ends the command with exit code 2 and one line naming the file (and line
or field), and leaves nothing half-written where the command would have written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from preforch.cli import COMMANDS, main

GOOD = {"prompt": "hi", "chosen": "hello there", "rejected": "go away"}
NOT_UTF8 = b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'


def jsonl(path: Path, *rows, raw: bytes = b"") -> str:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + raw)
    return str(path)


def truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[:len(data) // 2])


def copy(folder: str, tmp: Path, name: str) -> Path:
    return Path(shutil.copytree(folder, tmp / name))


def run(argv: list[str], capsys) -> str:
    """The command's error line; fails unless it exits 2 with one error line, last on stderr (progress bars of
    models loaded before may precede it), and no traceback."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("preforch ")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]) and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_recipe_that_is_not_utf8_names_its_file_and_line(command, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(b"seed: 1\n# caf\xe9\n")
    assert f"{recipe}:2: not UTF-8" in run([command, "--config", recipe], capsys)


def test_training_data_not_utf8_names_file_and_line(tiny_encoder_dir, tmp_path, capsys):
    data = jsonl(tmp_path / "pairs.jsonl", GOOD, raw=NOT_UTF8)
    out = tmp_path / "rm"
    err = run(["train-rm", "--base_model", tiny_encoder_dir, "--objectives", "helpful", "--train_data", data,
               "--eval_data", data, "--output_dir", out], capsys)
    assert f"{data}:2: not UTF-8 text (byte 0xe9)" in err and not out.exists()


@pytest.mark.parametrize("suffix, content", [
    (".csv", b"prompt,chosen,rejected\nhi,a,b\ncaf\xe9,a,b\n"),
    (".json", b'[{"prompt": "hi", "chosen": "a", "rejected": "b"},\n {"prompt": "caf\xe9"}]'),
])
def test_csv_and_json_data_not_utf8(suffix, content, tiny_encoder_dir, tmp_path, capsys):
    data = tmp_path / f"pairs{suffix}"
    data.write_bytes(content)
    err = run(["train-rm", "--base_model", tiny_encoder_dir, "--objectives", "helpful", "--train_data", data,
               "--eval_data", data, "--output_dir", tmp_path / "rm"], capsys)
    assert f"{data}:" in err and "not UTF-8" in err


@pytest.mark.parametrize("record, message", [
    ({**GOOD, "prompt": 3}, "field 'prompt': must be a string or a list of chat messages, got int"),
    ({**GOOD, "prompt": {"text": "hi"}}, "field 'prompt': must be a string or a list of chat messages, got dict"),
    ({**GOOD, "chosen": 7}, "field 'chosen' must be a string, got int"),
    ([GOOD], "expected an object, got list"),
])
def test_wrong_json_types_in_data_name_the_line_and_field(record, message, tiny_encoder_dir, tiny_ensemble_dir,
                                                          tmp_path, capsys):
    data = jsonl(tmp_path / "pairs.jsonl", GOOD, record)
    out = tmp_path / "orch"
    err = run(["train-orchestrator", "--encoder", tiny_encoder_dir, "--ensemble", tiny_ensemble_dir, "--train_data",
               data, "--output_dir", out], capsys)
    assert f"{data}:2: {message}" in err
    assert not out.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda d: truncate(d / "head.safetensors"), "head.safetensors: corrupt or truncated safetensors file"),
    (lambda d: truncate(d / "encoder" / "model.safetensors"), "model.safetensors: corrupt or truncated"),
    (lambda d: (d / "orchestrator_config.json").write_bytes(b'{"objectives": "\xff"}'), "orchestrator_config.json:1: not UTF-8"),
    (lambda d: (d / "orchestrator_config.json").write_text("[1, 2"), "orchestrator_config.json:1: malformed JSON"),
    (lambda d: shutil.rmtree(d), "not a PreferenceOrchestrator folder"),
])
def test_a_damaged_orchestrator_folder_is_named(damage, message, tiny_orchestrator_dir, tmp_path, capsys):
    folder = copy(tiny_orchestrator_dir, tmp_path, "orchestrator")
    damage(folder)
    assert message in run(["weights", "How do I cook rice?", "--orchestrator", folder], capsys)


def test_a_truncated_reward_model_is_named_and_no_ensemble_is_written(tiny_rm_dir, tmp_path, capsys):
    rm = copy(tiny_rm_dir, tmp_path, "rm")
    truncate(rm / "head.safetensors")
    out = tmp_path / "rewards"
    err = run(["build-ensemble", "--reward_models", rm, "--output_dir", out], capsys)
    assert f"{rm / 'head.safetensors'}: corrupt" in err and not out.exists()


@pytest.mark.parametrize("command", ["generate", "serve"])
def test_a_truncated_policy_is_named(command, tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    policy = copy(tiny_policy_dir, tmp_path, "policy")
    truncate(policy / "model.safetensors")
    out = tmp_path / "answers.jsonl"
    argv = [command, "--policy", policy, "--ensemble", tiny_ensemble_dir, "--orchestrator", "",
            *(["--prompt", "hi", "--weights", "helpful=1", "--output", out] if command == "generate" else [])]
    assert f"{policy / 'model.safetensors'}: corrupt" in run(argv, capsys) and not out.exists()


@pytest.mark.parametrize("make, message", [
    (lambda t: (t / "prompts.txt").write_bytes(b"hello\ncaf\xe9\n"), "prompts.txt:2: not UTF-8"),
    (lambda t: (t / "ens").mkdir() or (t / "ens" / "ensemble.json").write_text("[]"), "malformed ensemble file"),
    (lambda t: (t / "pol").mkdir() or (t / "pol" / "preference_policy.json").write_text('{"kind": 3}'), "field 'kind'"),
    (lambda t: None, "no reward ensemble here"),
])
def test_generate_inputs(make, message, tiny_ensemble_dir, tmp_path, capsys):
    make(tmp_path)
    out = tmp_path / "answers.jsonl"
    ensemble = tmp_path / "ens" if (tmp_path / "ens").exists() else tiny_ensemble_dir
    if message == "no reward ensemble here":
        ensemble = tmp_path / "missing"
    argv = ["generate", "--ensemble", ensemble, "--orchestrator", "", "--weights", "helpful=1", "--output", out,
            "--policy", tmp_path / "pol" if (tmp_path / "pol").exists() else "smollm2"]
    argv += ["--prompts_file", tmp_path / "prompts.txt"] if (tmp_path / "prompts.txt").exists() else ["--prompt", "hi"]
    assert message in run(argv, capsys) and not out.exists()


def test_eval_orchestrator_with_bad_data_writes_no_output(tiny_orchestrator_dir, tiny_ensemble_dir, tmp_path, capsys):
    data = jsonl(tmp_path / "heldout.jsonl", GOOD, raw=NOT_UTF8)
    out = tmp_path / "metrics.json"
    err = run(["eval-orchestrator", "--orchestrator", tiny_orchestrator_dir, "--ensemble", tiny_ensemble_dir,
               "--eval_data", data, "--output", out], capsys)
    assert f"{data}:2: not UTF-8" in err and not out.exists()


@pytest.mark.parametrize("content, message", [
    (b'{"objectives": ["a"], "reference_point": [\xff]}', "evaluation.json:1: not UTF-8"),
    (b"[]", "not an evaluation result"),
])
def test_compare_names_a_bad_evaluation_file(content, message, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "evaluation.json").write_bytes(content)
    out = tmp_path / "cmp"
    assert message in run(["compare", tmp_path / "run", "--output_dir", out], capsys) and not out.exists()


def test_evaluate_from_a_run_with_wrong_metrics(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text('{"config": []}')
    out = tmp_path / "eval"
    err = run(["evaluate", "--from_run", tmp_path / "run", "--reference_point", "0", "0", "--output_dir", out], capsys)
    assert "metrics.json: malformed quickstart metrics" in err and not out.exists()


def test_plot_logs_names_the_bad_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss"\n')
    out = tmp_path / "plot.png"
    err = run(["plot-logs", tmp_path / "run", "--metric", "loss", "--output", out], capsys)
    assert "log.jsonl:2: malformed JSON" in err and not out.exists()


@pytest.mark.parametrize("command", ["train-policy", "train-experts", "train-wic"])
def test_training_commands_name_bad_prompt_data(command, tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    data = jsonl(tmp_path / "pairs.jsonl", GOOD, {**GOOD, "prompt": 3})
    out = tmp_path / "out"
    argv = [command, "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir, "--train_data", data,
            "--output_dir", out]
    if command == "train-policy":
        argv += ["--method", "morlhf"]
    if command == "train-experts":
        argv = [command, "--base_model", tiny_policy_dir, "--objectives", "helpful", "--train_data", data, "--eval_data", data,
                "--output_dir", out]
    err = run(argv, capsys)
    assert f"{data}:2: field 'prompt': must be a string" in err and not out.exists()


def test_an_unknown_training_signal_is_one_line_naming_the_option(capsys):
    assert run(["train-policy", "--algorithm", "ppo"], capsys).endswith(
        "algorithm: expected one of grpo, rloo, ranked-dpo, online-dpo, modpo, got 'ppo'")
    assert run(["train-policy", "--aggregation", "mean"], capsys).endswith(
        "aggregation: expected one of sum-then-normalize, normalize-then-sum, got 'mean'")
    assert "aggregation: normalize-then-sum is not available with --algorithm ranked-dpo" in run(
        ["train-policy", "--algorithm", "ranked-dpo", "--aggregation", "normalize-then-sum"], capsys)


def test_a_port_that_is_not_a_tcp_port_is_one_line(capsys):
    assert main(["serve", "--port", "99999"]) == 2
    assert "port: 99999 is not a TCP port (1-65535)" in capsys.readouterr().err


def test_ctrl_c_ends_with_one_line(monkeypatch, capsys):
    import preforch.cli.commands as commands

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "weights", interrupted)
    assert main(["weights", "hi"]) == 130
    assert capsys.readouterr().err.strip() == "preforch weights: interrupted"


def test_generate_refuses_a_prompt_over_its_character_limit(capsys):
    assert main(["generate", "--prompt", "x" * 50, "--max_prompt_chars", "40"]) == 2
    assert "prompt 0: 50 characters, over --max_prompt_chars 40" in capsys.readouterr().err


def test_compare_refuses_to_write_into_one_of_its_runs(tmp_path, capsys):
    run = tmp_path / "eval_a"
    assert main(["compare", str(run), str(tmp_path / "eval_b"), "--output_dir", str(run)]) == 2
    assert "output_dir: " in (err := capsys.readouterr().err) and "is the evaluation run" in err
