"""train-mahalo as MAHALO trains (issue 32): dropout off, so the policy starts equal to its eval-mode reference."""

import json

import torch

from preforch.alignment.config import MahaloConfig
from preforch.alignment.mahalo import train_mahalo
from tests.conftest import objective_pair_files


def _gpt2_with_dropout(tiny_policy_dir, folder) -> str:
    """A 2-layer random GPT-2 with dropout 0.5 everywhere (nn.Dropout modules) and the tiny policy's tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=256, resid_pdrop=0.5,
                               embd_pdrop=0.5, attn_pdrop=0.5, pad_token_id=tok.pad_token_id,
                               eos_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_train_mahalo_trains_with_dropout_off_so_the_first_margins_are_zero(tiny_policy_dir, tmp_path):
    """Heads start as exact copies of the reference head (noise 0): with dropout off, every pair's DPO margin at the
    first step is 0 and its loss log 2; with the base model's dropout on, the policy differs from the eval-mode
    reference by noise before any update."""
    files = objective_pair_files(tmp_path, 8)
    cfg = MahaloConfig(base_model=_gpt2_with_dropout(tiny_policy_dir, tmp_path / "gpt2"),
                       objectives=["helpful", "harmless"], train_data=files, eval_data=files,
                       output_dir=str(tmp_path / "run"), batch_size=4, max_steps=1, noise_std=0.0,
                       max_prompt_tokens=16, max_reply_tokens=16)
    train_mahalo(cfg)
    first = json.loads((tmp_path / "run" / "training" / "log.jsonl").read_text().splitlines()[0])
    assert abs(first["helpful/margin"]) < 1e-5 and abs(first["harmless/margin"]) < 1e-5
