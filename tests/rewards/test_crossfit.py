import json

import pytest
import torch

from preforch.data.loaders import load_preferences
from preforch.data.schema import PreferenceDataset, PreferencePair, content_key, pair_fold
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
    assert chosen.shape == rejected.shape == (len(data), 2)
    assert chosen.applies.all() and torch.isfinite(chosen.values).all()
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


def graded(prompts=None, completions=(), **kwargs):
    """Exact match on 'What is' problems; None on chat prompts and on a reply that passes ("not applicable")."""
    texts = [c[-1]["content"] for c in completions]
    return [None if "What is" not in p[-1]["content"] or t == "pass" else float(t == "right")
            for p, t in zip(prompts, texts)]


def test_cross_fitting_fits_a_rule_on_the_replies_it_applies_to(pairs, monkeypatch):
    from preforch.rewards import crossfit
    from preforch.rewards.normalization import ZScore

    problems = [PreferencePair(({"role": "user", "content": f"What is {i} + 1?"},), "right", "wrong", "math")
                for i in range(40)]
    in_fold_0 = [p for p in problems if pair_fold(p, 2) == 0][:6]  # fold 1 gets one problem, half of it judged
    lone = next(p for p in (PreferencePair(({"role": "user", "content": f"What is {i} + 2?"},), "right", "pass", "math")
                            for i in range(40)) if pair_fold(p, 2) == 1)
    data = PreferenceDataset(list(pairs) + in_fold_0 + [lone])
    sources = [RuleReward("conciseness", "conciseness"), RuleReward("arithmetic", "tests.rewards.test_crossfit:graded")]
    ensemble = RewardEnsemble(sources, ZScore(torch.tensor([0.0, 0.25]), torch.tensor([1.0, 2.0]), 100))
    monkeypatch.setattr(crossfit, "fold_ensembles", lambda e: [RewardEnsemble(sources), RewardEnsemble(sources)])
    chosen, rejected = cross_fitted_pair_scores(ensemble, data)

    problem = torch.tensor(["What is" in p.prompt[-1]["content"] for p in data])
    assert not chosen.applies[~problem, 1].any() and chosen.applies[:, 0].all()
    # fold 0: six right and six wrong replies, z-scored among themselves, never diluted by the chat replies' absence
    fold_0 = torch.tensor([pair_fold(p, 2) == 0 for p in data]) & problem
    z = torch.cat([chosen.values[fold_0, 1], rejected.values[fold_0, 1]])
    assert z.mean().item() == pytest.approx(0.0, abs=1e-6) and z.std().item() == pytest.approx(1.0, abs=1e-5)
    # fold 1 judges one reply: too few to fit, so the main ensemble's statistics score it
    assert chosen.values[-1, 1].item() == pytest.approx((1 - 0.25) / 2) and not rejected.applies[-1, 1]


class FoldedSource:
    """A learned source of a kind of its own (not a Hugging Face reward model): cross-fitting finds it by the
    capability its kind declares, and builds its fold models with `at`."""

    kind, may_not_apply, learned = "toy", False, True
    objectives = ("toy",)

    def __init__(self, path):
        self.path = str(path)

    def at(self, folder):
        return FoldedSource(folder)

    def score(self, prompts, responses, **columns):
        return torch.full((len(responses), 1), float(self.path.endswith("1")))


def test_a_source_kind_that_declares_itself_learned_is_cross_fitted_by_its_folds(tmp_path):
    from preforch.rewards.crossfit import fold_ensembles

    for f in ("0", "1"):
        (tmp_path / "rm" / "folds" / f).mkdir(parents=True)
    rule = RuleReward("conciseness", "conciseness")
    folds = fold_ensembles(RewardEnsemble([FoldedSource(tmp_path / "rm"), rule]))
    assert [e.sources[0].path for e in folds] == [str(tmp_path / "rm" / "folds" / f) for f in ("0", "1")]
    assert all(e.sources[1] is rule for e in folds), "a source that learned nothing is shared"
    assert not RuleReward.learned and HFRewardModel.learned
