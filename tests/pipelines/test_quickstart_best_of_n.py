"""The quickstart's best-of-N comparison where an objective does not apply to some candidates."""

import json
from types import SimpleNamespace

import pytest
import torch

from preforch.data.schema import PreferenceDataset, PreferencePair
from preforch.pipelines.quickstart import compare_best_of_n
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.normalization import ZScore
from preforch.rewards.sources import RuleReward


def test_best_of_n_picks_by_what_applies_and_reports_null_means(monkeypatch):
    """Every prompt's candidates are "ok" (no digits: the digits rule does not apply) and "123". Before, "ok" scored
    NaN, argmax chose it, and the report's means were NaN; now "123" wins under either weighting and a selection
    whose picks the rule never judged reports null for it."""
    import preforch.generation.sampling as sampling
    import preforch.models as models

    monkeypatch.setattr(models, "load_policy", lambda path: (None, None))
    monkeypatch.setattr(sampling, "sample_candidates", lambda model, tok, prompts, cfg: [["ok", "123"] for _ in prompts])
    ensemble = RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("digits", "tests.serving.policies.test_policies:digits")],
                              ZScore(torch.tensor([-2.0, 0.0]), torch.tensor([0.5, 1.0]), 10))
    held_out = PreferenceDataset([PreferencePair(({"role": "user", "content": f"count {i}"},), "1", "2", src)
                                  for i, src in enumerate(["a", "b"])])
    orchestrator = SimpleNamespace(predict=lambda prompts: torch.tensor([[0.4, 0.6]] * len(prompts)))
    out = compare_best_of_n(SimpleNamespace(seed=0, num_candidates=2, max_new_tokens=4), "unused", ensemble,
                            orchestrator, held_out)
    json.dumps(out, allow_nan=False)
    assert all(e["orchestrator_pick"] == e["uniform_pick"] == "123" for e in out["examples"])
    a = out["by_source"]["a"]
    assert a["first_sample"]["digits"] is None and a["first_sample"]["conciseness"] == pytest.approx(a["uniform_weights"]["conciseness"])
    assert a["uniform_weights"]["digits"] == a["orchestrator_weights"]["digits"] == 3.0
