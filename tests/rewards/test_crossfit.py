import json

import pytest
import torch

from preforch.data.loaders import load_preferences
from preforch.data.schema import content_key, pair_fold
from preforch.errors import ConfigError
from preforch.rewards import training
from preforch.rewards.config import RewardModelConfig
from preforch.rewards.crossfit import cross_fitted_pair_scores, fold_dirs
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.sources import HFRewardModel, RuleReward


def _write(path, n=24):
    rows = [{"prompt": f"question {i}", "chosen": f"thank you kindly {i}", "rejected": f"shut up {i}"} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_cross_fitting_never_scores_a_pair_with_a_model_that_trained_on_it(tiny_encoder_dir, tmp_path, monkeypatch):
    data_file = _write(tmp_path / "p.jsonl")
    trained_on: dict = {}  # excluded fold -> (prompt, reply) keys the model trained on
    examples = training._examples

    def recording_examples(specs, cap, exclude_fold=None, holdout_validation=0.0):
        out = examples(specs, cap, exclude_fold, holdout_validation)
        trained_on[exclude_fold] = {content_key(e[1], r) for e in out for r in (e[2], e[3])}
        return out

    monkeypatch.setattr(training, "_examples", recording_examples)
    cfg = RewardModelConfig(base_model=tiny_encoder_dir, objectives=["polite"], train_data=[data_file], eval_data=[],
                            output_dir=str(tmp_path / "rm"), epochs=1, batch_size=8, max_length=32, cross_fit_folds=2)
    training.train_reward_models(cfg)
    dirs = fold_dirs(tmp_path / "rm")
    assert [d.name for d in dirs] == ["0", "1"]
    assert set(trained_on) == {None, (0, 2), (1, 2)}

    scored: dict = {}  # model path -> (prompt, reply) keys it scored
    score = HFRewardModel.score

    def recording_score(self, prompts, responses):
        scored.setdefault(self.path, set()).update(content_key(p, r) for p, r in zip(prompts, responses))
        return score(self, prompts, responses)

    monkeypatch.setattr(HFRewardModel, "score", recording_score)
    data = load_preferences(data_file)
    ensemble = RewardEnsemble([HFRewardModel(str(tmp_path / "rm"), device="cpu"), RuleReward("conciseness", "conciseness")])
    chosen, rejected = cross_fitted_pair_scores(ensemble, data)
    assert chosen.shape == rejected.shape == (len(data), 2) and torch.isfinite(chosen).all()
    assert str(tmp_path / "rm") not in scored, "the main model (trained on everything) scored nothing"
    for f, d in enumerate(dirs):
        assert scored[str(d)], f"fold {f} scored no pair"
        assert not scored[str(d)] & trained_on[(f, 2)], f"fold model {f} scored a pair it trained on"
    every = {content_key(p.prompt, r) for p in data for r in (p.chosen, p.rejected)}
    assert set().union(*scored.values()) == every
    assert all(pair_fold(p, 2) in (0, 1) for p in data)


def test_cross_fit_errors(tiny_rm_dir, pairs):
    ensemble = RewardEnsemble([HFRewardModel(tiny_rm_dir, device="cpu")])
    with pytest.raises(ConfigError, match="no cross-fitting folds.*--cross_fit_folds"):
        cross_fitted_pair_scores(ensemble, pairs)
    with pytest.raises(ConfigError, match="cross_fit_folds: expected 0"):
        RewardModelConfig(cross_fit_folds=1)
