"""docs/design.md, "Adding a training method": a toy RL method is its own class (here) plus one row in
METHODS (monkeypatched in), and `preforch train-policy --method <row>` trains with it end to end."""

import json

from preforch.alignment.methods import METHODS, PolicySetup, TrainingMethod
from preforch.alignment.rewards import completion_text
from preforch.alignment.trl_utils import rl_prompts
from preforch.cli import main

REWARDED = []  # completions the toy reward scored


def longer_is_better(prompts, completions, **_):
    """A TRL reward function: a completion's length in characters."""
    REWARDED.extend(completions)
    return [float(len(completion_text(c))) for c in completions]


class LongerIsBetter(TrainingMethod):
    """Every prompt as it is, rewarded by length alone: no reward ensemble, no orchestrator."""

    @classmethod
    def setup(cls, cfg, tokenizer) -> PolicySetup:
        from datasets import Dataset

        prompts, _ = rl_prompts(cfg, tokenizer)
        return PolicySetup(Dataset.from_dict({"prompt": [list(p) for p in prompts]}), longer_is_better, ["length"],
                           "the completion's length in characters")


def test_a_toy_method_is_one_class_and_one_row(monkeypatch, tiny_policy_dir, tmp_path, capsys):
    monkeypatch.setitem(METHODS, "longer", f"{__name__}:LongerIsBetter")
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"q {i}", "chosen": "a", "rejected": "b"}) for i in range(4)))
    out = tmp_path / "run"
    args = ["train-policy", "--policy", tiny_policy_dir, "--train_data", str(data), "--output_dir", str(out),
            "--ensemble", str(tmp_path / "no-ensemble"), "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--num_generations", "2", "--max_completion_length", "4", "--save_steps", "1"]
    assert main([*args, "--method", "longer"]) == 0
    assert "longer (grpo): 1 steps" in capsys.readouterr().out
    assert len(REWARDED) >= 4, "the toy reward scored the step's completions"
    assert "rewarded by the completion's length in characters" in (out / "policy" / "README.md").read_text()
    # the --method check reads the table: the toy row is listed, an unknown name refused before anything is written
    assert main([*args, "--method", "shorter", "--output_dir", str(tmp_path / "other")]) == 2
    assert ("method: expected one of pro-morlhf, morlhf, single-reward, moslim, longer, got 'shorter'"
            in capsys.readouterr().err)
    assert not (tmp_path / "other").exists()
