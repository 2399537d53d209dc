"""MOSLIM's classification reward model: labels from pairs and ratings, training, saving, loading as a source."""

import json

import pytest
import torch

from preforch.errors import ConfigError
from preforch.rewards.classifier import ClassifierRewardModel
from preforch.rewards.classifier_reward import ClassifierReward
from preforch.rewards.classifier_training import labelled_pairs
from preforch.rewards.config import RewardModelConfig
from preforch.rewards.levels import MASKED
from preforch.rewards.sources import HFRewardModel
from preforch.rewards.training import train_reward_models


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def _data(tmp_path):
    pairs = _write(tmp_path / "p.jsonl", [{"prompt": f"q {i}", "chosen": "thank you kindly friend",
                                            "rejected": "shut up idiot"} for i in range(16)])
    rated = _write(tmp_path / "r.jsonl", [{"prompt": f"q {i}", "chosen": "a careful complete answer",
                                           "rejected": "bad", "metadata": {"score_chosen": 9.5, "score_rejected": 1.5}}
                                          for i in range(16)])
    return pairs, rated


def test_labels_mask_the_heads_a_data_set_says_nothing_about(tmp_path):
    pairs, rated = _data(tmp_path)
    data = labelled_pairs([pairs, pairs, rated], [2, 2, 5], cap=2)
    assert [(c[2], r[2]) for c, r in data] == [((1, MASKED, MASKED), (0, MASKED, MASKED))] * 2 + \
        [((MASKED, 1, MASKED), (MASKED, 0, MASKED))] * 2 + [((MASKED, MASKED, 4), (MASKED, MASKED, 0))] * 2


def test_classifier_trains_saves_stats_and_loads_as_a_reward_source(tiny_encoder_dir, tmp_path):
    pairs, rated = _data(tmp_path)
    out = tmp_path / "rm"
    cfg = RewardModelConfig(base_model=tiny_encoder_dir, objectives=["polite", "calm", "quality"], levels=[2, 2, 5],
                            train_data=[pairs, pairs, rated], eval_data=[pairs, pairs, rated], output_dir=str(out),
                            learning_rate=1e-3, epochs=4, batch_size=8, max_length=32, prompt_max_tokens=8)
    torch.manual_seed(0)
    before = ClassifierRewardModel.from_encoder(tiny_encoder_dir, cfg.objectives, cfg.levels)
    (source,), metrics = train_reward_models(cfg)
    m = metrics[str(out)]
    assert sum(m["loss_curve"][-3:]) < sum(m["loss_curve"][:3])
    assert m["eval_accuracy"] == {"polite": 1.0, "calm": 1.0, "quality": 1.0}
    assert m["heads"]["quality"]["exact_accuracy"] <= m["heads"]["quality"]["within_one_accuracy"]
    assert 0 <= m["heads"]["polite"]["ece"] <= 1
    assert isinstance(source, ClassifierReward) and source.num_levels == (2, 2, 5)
    assert not torch.allclose(source.model.head.weight, before.head.weight)
    assert source.stats.mean.shape == (3, 5) and source.stats.num_samples == m["reference_replies"]
    prompts, replies = [({"role": "user", "content": "q"},)] * 2, ["thank you kindly friend", "shut up idiot"]
    probs = source.probabilities(prompts, replies)
    assert probs.shape == (2, 3, 5) and probs[0, 0, 1] > probs[1, 0, 1]
    # the same folder as a plain reward source scores each objective by its expected level
    plain = HFRewardModel(str(out), device="cpu")
    assert plain.objectives == ("polite", "calm", "quality")
    assert torch.allclose(plain.score(prompts, replies), (probs * torch.arange(5.0)).sum(-1), atol=1e-5)


def test_a_bradley_terry_folder_is_not_a_classifier(tiny_rm_dir):
    with pytest.raises(ConfigError, match="not a classification reward model"):
        ClassifierReward(tiny_rm_dir, device="cpu")


@pytest.mark.parametrize("kw, message", [
    (dict(levels=[2, 2, 5]), "levels: needs one entry per objective"),
    (dict(levels=[2, 1]), "every count must be >= 2"),
    (dict(levels=[2, 2], multi_head=False), "with multi_head"),
])
def test_levels_config_errors(kw, message):
    with pytest.raises(ConfigError, match=message):
        RewardModelConfig(**kw)


def test_cli_reports_a_bad_rating_in_one_line_and_writes_nothing(tiny_encoder_dir, tmp_path, capsys):
    from preforch.cli import main

    pairs, _ = _data(tmp_path)
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b", "score_chosen": 12,
                                           "score_rejected": 3}])
    assert main(["train-rm", "--base_model", tiny_encoder_dir, "--objectives", "helpful", "quality", "--levels", "2", "5",
                 "--train_data", pairs, bad, "--eval_data", pairs, bad, "--output_dir", str(tmp_path / "rm")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.jsonl:1: field 'score_chosen' = 12 is outside the score range [1, 10]" in err
    assert not (tmp_path / "rm").exists()
