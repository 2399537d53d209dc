"""docs/design.md, "Adding a reward source": a toy source kind is its own class (here) plus one row in SOURCES
(monkeypatched in); an ensemble holding it saves, loads through the table and scores `preforch train-policy`'s
completions end to end."""

import json

import pytest
import torch

from preforch.cli import main
from preforch.errors import ConfigError
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.sources import SOURCES
from tests.conftest import make_pairs


class LetterCount:
    """One objective: how often the reply uses a letter."""

    kind = "letter-count"

    def __init__(self, letter: str):
        self.letter, self.objectives = letter, (f"count_{letter}",)

    def score(self, prompts, responses) -> torch.Tensor:
        return torch.tensor([[float(r.count(self.letter))] for r in responses])

    def spec(self, folder=None) -> dict:
        return {"kind": self.kind, "letter": self.letter}

    @classmethod
    def from_saved(cls, spec, base_dir=None, device=None) -> "LetterCount":
        return cls(spec["letter"])


def test_a_toy_source_is_one_class_and_one_row(monkeypatch, tiny_policy_dir, tmp_path):
    monkeypatch.setitem(SOURCES, "letter-count", f"{__name__}:LetterCount")
    ensemble = RewardEnsemble([LetterCount("e")])
    ensemble.fit_normalization(make_pairs(), progress=False)
    ensemble.save(tmp_path / "ens")
    assert json.loads((tmp_path / "ens" / "ensemble.json").read_text())["sources"] == [{"kind": "letter-count", "letter": "e"}]
    loaded = RewardEnsemble.load(tmp_path / "ens")
    assert torch.equal(loaded.score_raw([[{"role": "user", "content": "hi"}]], ["e e e"]).values, torch.tensor([[3.0]]))

    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"q {i}", "chosen": "a", "rejected": "b"}) for i in range(4)))
    out = tmp_path / "run"
    assert main(["train-policy", "--method", "single-reward", "--objective", "count_e", "--policy", tiny_policy_dir,
                 "--ensemble", str(tmp_path / "ens"), "--train_data", str(data), "--output_dir", str(out),
                 "--max_steps", "1", "--per_device_train_batch_size", "4", "--num_generations", "2",
                 "--max_completion_length", "4", "--save_steps", "1"]) == 0
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("objectives/count_e/normalized" in row for row in logs)

    monkeypatch.delitem(SOURCES, "letter-count")  # without its row the saved kind is unknown
    with pytest.raises(ConfigError, match="unknown kind 'letter-count'"):
        RewardEnsemble.load(tmp_path / "ens")
