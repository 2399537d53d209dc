"""--report_to in the training commands preforch runs its own loop for (train-rm, train-orchestrator, train-mahalo):
accelerate's trackers receive the loss per step; TRL's commands pass report_to to TRL."""

import json
from pathlib import Path

import pytest

from preforch.cli import main
from tests.conftest import objective_pair_files


def _scalars(folder: Path) -> dict[str, int]:
    """Tag -> number of points of every TensorBoard event file under `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for events in folder.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        out.update({tag: len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"]})
    return out


def test_train_rm_and_train_orchestrator_log_their_loss_to_tensorboard(tiny_encoder_dir, tiny_ensemble_dir, tmp_path):
    files = objective_pair_files(tmp_path, 16)
    rm = tmp_path / "rm"
    assert main(["train-rm", "--base_model", tiny_encoder_dir, "--train_data", *files, "--eval_data", *files,
                 "--batch_size", "4", "--max_length", "32", "--report_to", "tensorboard", "--output_dir", str(rm)]) == 0
    steps = json.loads((rm / "train_rm_config.json").read_text())["metrics"]["steps"]
    assert _scalars(tmp_path / "rm_logs")["loss"] == steps and (rm / "head.safetensors").is_file()
    orch = tmp_path / "orch"
    data = str(tmp_path / "helpful.jsonl")
    assert main(["train-orchestrator", "--ensemble", tiny_ensemble_dir, "--encoder", tiny_encoder_dir, "--train_data", data,
                 "--eval_data", data, "--epochs", "3", "--report_to", "tensorboard", "--output_dir", str(orch)]) == 0
    assert _scalars(tmp_path / "orch_logs")["loss"] == 3


def test_train_mahalo_logs_its_loss_to_tensorboard(tiny_policy_dir, tmp_path):
    files = objective_pair_files(tmp_path, 8)
    out = tmp_path / "mahalo"
    assert main(["train-mahalo", "--base_model", tiny_policy_dir, "--objectives", "helpful", "harmless",
                 "--train_data", *files, "--eval_data", *files, "--batch_size", "4", "--max_steps", "2",
                 "--max_prompt_tokens", "16", "--max_reply_tokens", "16", "--report_to", "tensorboard",
                 "--output_dir", str(out)]) == 0
    assert _scalars(out / "training")["loss"] == 2


def test_an_unknown_tracker_is_refused_by_name(capsys):
    assert main(["train-rm", "--report_to", "tensorboard,tensorbored"]) == 2
    assert "report_to: unknown tracker(s) ['tensorbored']" in capsys.readouterr().err
