"""Every TRL trainer field is reachable: a recipe's `trl:` block and --trl.FIELD flags reach the TRL config."""

import json

import pytest

from preforch.alignment.config import PolicyConfig, WicConfig
from preforch.alignment.morlhf import train_policy
from preforch.cli import main
from preforch.cli.parsing import parse_config
from preforch.errors import ConfigError


def test_a_recipe_trl_block_reaches_the_trainer(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    from transformers import TrainerCallback

    recipe = tmp_path / "policy.yaml"
    recipe.write_text(f"method: morlhf\npolicy: {tiny_policy_dir}\nensemble: {tiny_ensemble_dir}\nmax_steps: 1\n"
                      "per_device_train_batch_size: 4\nnum_generations: 2\nmax_completion_length: 4\n"
                      f"output_dir: {tmp_path / 'run'}\n"
                      "trl: {gradient_accumulation_steps: 2, loss_type: dr_grpo, scale_rewards: none}\n")
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"q {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    cfg = parse_config(PolicyConfig, ["--config", str(recipe), "--train_data", str(data), "--trl.scale_rewards", "batch"],
                       prog="train-policy")
    assert cfg.trl == {"gradient_accumulation_steps": 2, "loss_type": "dr_grpo", "scale_rewards": "batch"}
    seen = {}

    class Record(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            seen.update(gradient_accumulation_steps=args.gradient_accumulation_steps, loss_type=args.loss_type,
                        scale_rewards=args.scale_rewards, learning_rate=args.learning_rate)

    train_policy(cfg, callbacks=(Record(),))
    # TRL-only fields from the block and the flag; preforch's own settings stay where the block is silent
    assert seen == {"gradient_accumulation_steps": 2, "loss_type": "dr_grpo", "scale_rewards": "batch",
                    "learning_rate": cfg.learning_rate}
    card = (tmp_path / "run" / "policy" / "README.md").read_text()  # the trained policy carries a model card
    assert "multi-objective-rl" in card and "GRPO (TRL, sum-then-normalize) for 1 steps" in card and "fixed weights uniform (MORLHF)" in card


def test_a_field_trl_lacks_is_refused_by_name_before_anything_loads(tiny_ensemble_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train-policy", "--method", "morlhf", "--ensemble", tiny_ensemble_dir, "--policy", "no/such-model",
                 "--trl.gradient_acumulation_steps", "2", "--output_dir", str(out)]) == 2
    assert "trl: GRPOConfig (TRL" in (err := capsys.readouterr().err) and "['gradient_acumulation_steps']" in err
    assert not out.exists()
    with pytest.raises(ConfigError, match="--trl.beta: this command passes nothing to a TRL trainer"):
        from preforch.rewards.config import EnsembleConfig

        parse_config(EnsembleConfig, ["--trl.beta", "0.1"], prog="build-ensemble")
    assert main(["train-policy", "--method", "morlhf", "--ensemble", tiny_ensemble_dir, "--policy", "no/such-model",
                 "--trl.beta", "abc", "--output_dir", str(out)]) == 2
    assert "trl.beta: expected a number, got 'abc'" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("trl: [1, 2]\n")
    with pytest.raises(ConfigError, match="'trl' must be a mapping"):
        parse_config(WicConfig, ["--config", str(bad)], prog="train-wic")
