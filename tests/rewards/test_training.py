import json

import pytest
import torch

from preforch.models import make_accelerator
from preforch.rewards.config import RewardModelConfig
from preforch.rewards.sources import HFRewardModel
from preforch.rewards.fitting import fit
from preforch.rewards.training import train_reward_model, train_reward_models


def _write_pairs(path, n=32):
    """Chosen replies are polite, rejected rude: a pattern a tiny model can learn in a few steps."""
    rows = [{"prompt": f"question {i}", "chosen": "thank you kindly friend", "rejected": "shut up idiot"} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_multi_head_training_changes_parameters_and_learns(tiny_encoder_dir, tmp_path):
    data = _write_pairs(tmp_path / "p.jsonl")
    cfg = RewardModelConfig(base_model=tiny_encoder_dir, objectives=["polite", "calm"], train_data=[data, data],
                            eval_data=[data, data], output_dir=str(tmp_path / "rm"), learning_rate=1e-3, epochs=3,
                            batch_size=8, max_length=32, prompt_max_tokens=8)
    from preforch.rewards.multihead import MultiHeadRewardModel

    torch.manual_seed(0)
    before = MultiHeadRewardModel.from_encoder(tiny_encoder_dir, ["polite", "calm"])
    metrics = train_reward_model(cfg)
    losses = metrics["loss_curve"]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    assert metrics["eval_accuracy"] == {"polite": 1.0, "calm": 1.0}
    rm = HFRewardModel(str(tmp_path / "rm"), device="cpu")
    assert rm.objectives == ("polite", "calm")
    assert not torch.allclose(rm.model.head.weight, before.head.weight)
    assert not torch.allclose(rm.model.encoder.embeddings.word_embeddings.weight, before.encoder.embeddings.word_embeddings.weight)
    saved = json.loads((tmp_path / "rm" / "train_rm_config.json").read_text())
    assert saved["metrics"]["eval_accuracy"]["polite"] == 1.0


def test_an_encoder_saved_in_bf16_trains_in_float32(tiny_encoder_dir, tmp_path):
    """Updates at fine-tuning learning rates vanish in bf16 weights (8-bit mantissa): the encoder must move."""
    from transformers import AutoModel, AutoTokenizer

    bf16_dir = tmp_path / "bf16_encoder"
    AutoModel.from_pretrained(tiny_encoder_dir).to(torch.bfloat16).save_pretrained(bf16_dir)
    AutoTokenizer.from_pretrained(tiny_encoder_dir).save_pretrained(bf16_dir)
    data = _write_pairs(tmp_path / "p.jsonl", 16)
    cfg = RewardModelConfig(base_model=str(bf16_dir), objectives=["polite"], train_data=[data], eval_data=[],
                            output_dir=str(tmp_path / "rm"), learning_rate=1e-5, warmup_ratio=0.0, batch_size=8,
                            max_length=32, prompt_max_tokens=8)
    train_reward_model(cfg)
    before = AutoModel.from_pretrained(bf16_dir).encoder.layer[0].intermediate.dense.weight
    after = HFRewardModel(str(tmp_path / "rm"), device="cpu").model.encoder.encoder.layer[0].intermediate.dense.weight
    assert after.dtype == torch.float32
    assert (after != before.float()).float().mean() > 0.9  # in bf16 only the few weights near zero would move


@pytest.mark.parametrize("disable", [False, True])
def test_disable_dropout_makes_the_training_forward_pass_deterministic(disable, tiny_encoder_dir):
    """With dropout off, the chosen and rejected replies of a pair see the same network (TRL's RewardConfig default)."""
    from preforch.rewards.multihead import MultiHeadRewardModel

    model = MultiHeadRewardModel.from_encoder(tiny_encoder_dir, ["polite"])
    enc = model.tokenizer(["thank you kindly friend"], return_tensors="pt")
    repeatable = []

    def loss_of(m, batch):
        a, b = (m.encoder(**enc).last_hidden_state for _ in range(2))
        repeatable.append(torch.equal(a, b))
        return m(**enc).logits.sum()

    cfg = RewardModelConfig(base_model=tiny_encoder_dir, objectives=["polite"], train_data=["x"], eval_data=[],
                            disable_dropout=disable, batch_size=1)
    fit(make_accelerator(), model, [0, 1, 2], [1, 1, 1], 1, cfg, loss_of, "test")
    assert repeatable == [disable] * 3


def test_head_learning_rate_trains_the_heads_at_their_own_rate(tiny_encoder_dir):
    """Adam moves each weight by about its group's learning rate per step, whatever the gradient's scale."""
    from preforch.rewards.multihead import MultiHeadRewardModel

    model = MultiHeadRewardModel.from_encoder(tiny_encoder_dir, ["polite"])
    enc = model.tokenizer(["a question"], ["thank you kindly friend"], return_tensors="pt")  # (prompt, reply)
    head = model.head.weight.detach().clone()
    encoder_layer = model.encoder.encoder.layer[0].output.dense.weight
    before = encoder_layer.detach().clone()
    cfg = RewardModelConfig(base_model=tiny_encoder_dir, objectives=["polite"], train_data=["x"], eval_data=[],
                            learning_rate=1e-4, head_learning_rate=1e-2, weight_decay=0.0, warmup_ratio=0.0,
                            batch_size=1, epochs=2)
    fit(make_accelerator(), model, [0, 1], [1, 1], 1, cfg, lambda m, batch: m(**enc).logits.sum(), "test")
    head_step = (model.head.weight - head).abs().max().item()  # Adam's first step is about lr per weight
    encoder_step = (encoder_layer - before).abs().max().item()
    assert head_step > 20 * encoder_step and head_step == pytest.approx(2e-2, rel=0.5)  # 4 steps, decaying


def test_single_head_per_objective_layout(tiny_encoder_dir, tmp_path):
    data = _write_pairs(tmp_path / "p.jsonl", 8)
    cfg = RewardModelConfig(base_model=tiny_encoder_dir, objectives=["a", "b"], train_data=[data, data], eval_data=[],
                            output_dir=str(tmp_path / "rms"), multi_head=False, epochs=1, batch_size=4, max_length=32)
    sources, metrics = train_reward_models(cfg)
    assert [s.objectives for s in sources] == [("a",), ("b",)]
    assert (tmp_path / "rms" / "a" / "head.safetensors").is_file()


def test_train_rm_runs_data_parallel_under_torchrun(tiny_encoder_dir, tmp_path):
    """2 CPU processes (gloo) through the real CLI: same command as single-process."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    data = _write_pairs(tmp_path / "p.jsonl", 16)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else shutil.which("torchrun"), "--standalone", "--nproc_per_node", "2",
           "-m", "preforch", "train-rm", "--base_model", tiny_encoder_dir, "--objectives", "polite",
           "--train_data", data, "--eval_data", data, "--output_dir", str(tmp_path / "rm"), "--epochs", "2",
           "--batch_size", "8", "--learning_rate", "1e-3", "--max_length", "32"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("held-out pairwise accuracy") == 1
    assert HFRewardModel(str(tmp_path / "rm"), device="cpu").objectives == ("polite",)


def test_holdout_validation_leaves_out_exactly_the_orchestrators_validation_slice(tmp_path):
    from preforch.data.loaders import load_preferences
    from preforch.data.schema import validation_split
    from preforch.rewards.training import _examples

    data = _write_pairs(tmp_path / "p.jsonl", 200)
    kept = {e[1][-1]["content"] for e in _examples([data], None, holdout_validation=0.1)}
    pairs = load_preferences(data)
    train_idx, val_idx = validation_split(pairs, 0.1)
    assert 5 <= len(val_idx) <= 40
    assert kept == {pairs[i].prompt_text for i in train_idx}


def test_train_rm_from_a_parquet_file_and_a_saved_datasets_folder(tiny_encoder_dir, tmp_path, capsys):
    """Your own data as `datasets` writes it: one objective's pairs in parquet, the other's in a save_to_disk folder."""
    from datasets import Dataset

    from preforch.cli import main

    rows = [{"prompt": f"question {i}", "chosen": "thank you kindly friend", "rejected": "shut up idiot"} for i in range(32)]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "polite.parquet"))
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "calm"))
    data = [str(tmp_path / "polite.parquet"), str(tmp_path / "calm")]
    assert main(["train-rm", "--base_model", tiny_encoder_dir, "--objectives", "polite", "calm", "--train_data", *data,
                 "--eval_data", *data, "--learning_rate", "1e-3", "--epochs", "3", "--batch_size", "8", "--max_length", "32",
                 "--output_dir", str(tmp_path / "rm")]) == 0
    metrics = json.loads((tmp_path / "rm" / "train_rm_config.json").read_text())["metrics"]
    assert metrics["train_pairs"] == 64 and metrics["eval_accuracy"] == {"polite": 1.0, "calm": 1.0}
