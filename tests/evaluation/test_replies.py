"""Kept replies judged again by another judge (`preforch rejudge`, issue 38)."""

import gzip
import json

import pytest
import torch

from preforch.cli import main
from preforch.evaluation.replies import read_replies, write_replies
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.normalization import ZScore
from preforch.rewards.sources import RuleReward

PROBLEM = [{"role": "user", "content": "What is 2 + 3? Give the final number on a last line as 'Answer: N'."}]
CHAT = [{"role": "user", "content": "Any tips for sleeping better?"}]


def _rows():
    return [{"prompt": PROBLEM, "source": "arithmetic", "arm": "pro", "seed": 0, "reply": "Answer: 5", "scores": {}},
            {"prompt": PROBLEM, "source": "arithmetic", "arm": "pro", "seed": 1, "reply": "Answer: 6", "scores": {}},
            {"prompt": CHAT, "source": "hh-helpful", "arm": "pro", "seed": 0, "reply": "Keep a routine.", "scores": {}},
            {"prompt": PROBLEM, "source": "arithmetic", "arm": "fixed", "seed": 0, "reply": "Answer: 6", "scores": {}}]


def test_rejudge_scores_kept_replies_with_another_judge(tmp_path, capsys):
    replies = tmp_path / "replies.jsonl.gz"
    write_replies(replies, _rows())
    assert len(gzip.decompress(replies.read_bytes()).decode().splitlines()) == 4
    judge = RewardEnsemble([RuleReward.from_spec("arithmetic=preforch.data.arithmetic:exact_match"),
                            RuleReward.from_spec("conciseness")],
                           ZScore(torch.tensor([0.5, -2.0]), torch.tensor([0.5, 1.0]), 10))
    judge.save(tmp_path / "judge")
    out = tmp_path / "out"
    assert main(["rejudge", "--replies", str(replies), "--judge", str(tmp_path / "judge"), "--output_dir", str(out)]) == 0
    rows = read_replies(out / "replies.jsonl.gz")
    assert [r["scores"]["arithmetic"] for r in rows] == [1.0, -1.0, None, -1.0]  # null: exact match does not apply
    summary = json.loads((out / "summary.json").read_text())
    pro = summary["by_arm"]["pro"]
    assert pro["arithmetic"]["mean"]["arithmetic"] == 0.0 and pro["arithmetic"]["n"]["arithmetic"] == 2  # seeds pooled
    assert pro["hh-helpful"]["mean"]["arithmetic"] is None and pro["hh-helpful"]["n"]["conciseness"] == 1
    assert "pro / arithmetic: arithmetic +0.000 (2)" in capsys.readouterr().out


def test_a_malformed_replies_file_names_the_line_and_field(tmp_path):
    from preforch.errors import DataError

    bad = tmp_path / "bad.jsonl.gz"
    write_replies(bad, [_rows()[0], {"prompt": CHAT, "source": "hh-helpful", "arm": "pro", "reply": "hi"}])
    with pytest.raises(DataError, match=r"bad.jsonl.gz:2: missing field\(s\) \['seed'\]"):
        read_replies(bad)
