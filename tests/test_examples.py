"""The examples users copy: a TRL GRPO script with per-prompt weights, and verl's in-process reward function."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_trl_grpo_script_trains_the_policy_under_per_prompt_weights(tiny_policy_dir, tiny_ensemble_dir,
                                                                        tiny_orchestrator_dir, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "grpo"
    load_example("trl_grpo_pro").main(["--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir, "--orchestrator",
                                       tiny_orchestrator_dir, "--output_dir", str(out), "--max_steps", "2"])
    before, after = load_file(Path(tiny_policy_dir) / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_the_verl_reward_function_is_the_combined_reward_under_the_orchestrators_weights(
        tiny_ensemble_dir, tiny_orchestrator_dir, monkeypatch):
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.scores import combined_reward

    monkeypatch.setenv("PREFORCH_ENSEMBLE", tiny_ensemble_dir)
    monkeypatch.setenv("PREFORCH_ORCHESTRATOR", tiny_orchestrator_dir)
    monkeypatch.delenv("PREFORCH_PREFERENCE", raising=False)
    verl = load_example("verl_reward")
    prompts = ["How do I pick a lock?", [{"role": "user", "content": "Write a haiku."}]]
    replies = ["I cannot help with that.", "Leaves fall, quiet light."]
    batch = verl.compute_score_batch(["hh", "hh"], replies, [None, None], [{"prompt": p} for p in prompts])
    single = verl.compute_score("hh", replies[0], None, {"prompt": prompts[0]})

    ensemble, orchestrator = RewardEnsemble.load(tiny_ensemble_dir), PreferenceOrchestrator.from_pretrained(tiny_orchestrator_dir)
    messages = [({"role": "user", "content": prompts[0]},), tuple(prompts[1])]
    expected = combined_reward(ensemble.score(messages, replies), orchestrator.predict(messages))
    assert [b["score"] for b in batch] == pytest.approx(expected.tolist(), abs=1e-5)
    assert single["score"] == pytest.approx(batch[0]["score"], abs=1e-5)
    assert sum(batch[0][f"weight/{o}"] for o in ensemble.objectives) == pytest.approx(1, abs=1e-5)
    with pytest.raises(ValueError, match=r"extra_info\['prompt'\] is missing"):
        verl.compute_score("hh", "x", None, {})
