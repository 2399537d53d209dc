import pytest
import torch

from preforch.errors import ConfigError
from preforch.orchestrator.config import OrchestratorConfig
from preforch.orchestrator.fit import fit_orchestrator
from preforch.orchestrator.model import PreferenceOrchestrator


def _keyword_targets(prompts):
    """Prompt-dependent targets: 'hurt' prompts want objective 1, the rest objective 0."""
    return torch.tensor([[0.1, 0.9] if "hurt" in p[-1]["content"] else [0.9, 0.1] for p in prompts])


def test_new_orchestrator_predicts_uniform_on_simplex(tiny_encoder_dir, pairs):
    orch = PreferenceOrchestrator.from_encoder(tiny_encoder_dir, ["a", "b", "c"])
    w = orch.predict(pairs.prompts)
    assert w.shape == (len(pairs), 3)
    assert torch.allclose(w, torch.full_like(w, 1 / 3))


@pytest.mark.parametrize("train_encoder", [False, True])
def test_fit_learns_prompt_dependent_weights(tiny_encoder_dir, pairs, train_encoder):
    torch.manual_seed(0)
    orch = PreferenceOrchestrator.from_encoder(tiny_encoder_dir, ["helpful", "harmless"])
    targets = _keyword_targets(pairs.prompts)
    enc_before = next(orch.encoder.parameters()).clone()
    cfg = OrchestratorConfig(encoder=tiny_encoder_dir, objective="kl", train_encoder=train_encoder, epochs=40 if not train_encoder else 8,
                             learning_rate=1e-2, weight_decay=0.0, batch_size=8)
    history = fit_orchestrator(orch, pairs.prompts, targets, torch.zeros_like(targets), cfg, progress=False)
    assert history[-1] < history[0]
    w = orch.predict(pairs.prompts)
    hurt = torch.tensor(["hurt" in p[-1]["content"] for p in pairs.prompts])
    assert w[hurt, 1].mean() > w[~hurt, 1].mean() + 0.2
    assert torch.allclose(w.sum(-1), torch.ones(len(w)), atol=1e-5)
    changed = not torch.equal(enc_before, next(orch.encoder.parameters()))
    assert changed == train_encoder


def test_predict_caches_per_prompt(tiny_encoder_dir, pairs):
    orch = PreferenceOrchestrator.from_encoder(tiny_encoder_dir, ["a", "b"])
    calls = []
    orch.encoder.register_forward_hook(lambda *a: calls.append(1))
    orch.predict(pairs.prompts[:4])
    orch.predict(pairs.prompts[:4] * 3)
    assert len(calls) == 1
    orch.predict(pairs.prompts[4:5])
    assert len(calls) == 2


def test_save_load_round_trip_keeps_objectives_tau_and_outputs(tiny_orchestrator_dir, pairs, tmp_path):
    orch = PreferenceOrchestrator.from_pretrained(tiny_orchestrator_dir, device="cpu")
    assert orch.objectives == ("helpful", "harmless", "conciseness") and orch.tau == 1.0
    assert len(orch.metadata["mean_train_target"]) == 3
    orch.save_pretrained(tmp_path / "again")
    again = PreferenceOrchestrator.from_pretrained(tmp_path / "again", device="cpu")
    assert torch.allclose(orch.predict(pairs.prompts), again.predict(pairs.prompts))
    assert (tmp_path / "again" / "head.safetensors").is_file()
    assert not list(tmp_path.glob(".again*")), "no temp folders left behind"


def test_temperature_is_saved_and_applied_by_predict(tiny_orchestrator_dir, pairs, tmp_path):
    orch = PreferenceOrchestrator.from_pretrained(tiny_orchestrator_dir, device="cpu")
    logits = orch.logits(pairs.prompts)
    orch.set_temperature(0.25)
    w = orch.predict(pairs.prompts)
    assert torch.allclose(w, torch.softmax(logits / 0.25, -1), atol=1e-6)
    assert torch.allclose(w.sum(-1), torch.ones(len(w)), atol=1e-6) and (w >= 0).all()
    orch.save_pretrained(tmp_path / "sharp")
    again = PreferenceOrchestrator.from_pretrained(tmp_path / "sharp", device="cpu")
    assert again.temperature == 0.25 and torch.allclose(again.predict(pairs.prompts), w, atol=1e-6)
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        orch.set_temperature(0.0)


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a PreferenceOrchestrator folder"):
        PreferenceOrchestrator.from_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="at least 2 objectives"):
        PreferenceOrchestrator(torch.nn.Linear(1, 1), None, ["only"])


def test_reward_model_encoder_alias_reads_prompts_with_the_reward_models_encoder(tiny_ensemble_dir, tiny_rm_dir, pairs):
    from preforch.orchestrator.fit import train_orchestrator
    from preforch.rewards.ensemble import RewardEnsemble

    ensemble = RewardEnsemble.load(tiny_ensemble_dir)
    model, _ = train_orchestrator(OrchestratorConfig(encoder="reward-model", epochs=2), ensemble, pairs, progress=False)
    rm = PreferenceOrchestrator.from_encoder(f"{tiny_rm_dir}/encoder", ensemble.objectives)
    assert torch.equal(model.embed(pairs.prompts[:4]), rm.embed(pairs.prompts[:4]))


def test_reward_model_encoder_alias_needs_a_reward_model_folder(pairs):
    from preforch.orchestrator.fit import train_orchestrator
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import RuleReward

    rules = RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("short", "conciseness")])
    rules.fit_normalization(pairs, progress=False)
    with pytest.raises(ConfigError, match="encoder 'reward-model': none of the ensemble's sources"):
        train_orchestrator(OrchestratorConfig(encoder="reward-model"), rules, pairs, progress=False)


def test_raw_targets_are_the_papers_softmax_over_raw_scores(tiny_ensemble_dir, pairs):
    """--targets raw: Eq. 7 over raw scores; the default reads z-scores, so the two targets differ when scales do."""
    from preforch.orchestrator.fit import train_orchestrator
    from preforch.orchestrator.targets import implicit_preference_weights
    from preforch.rewards.ensemble import RewardEnsemble

    ensemble = RewardEnsemble.load(tiny_ensemble_dir)
    means = {}
    for targets in ("normalized", "raw"):
        cfg = OrchestratorConfig(encoder="reward-model", epochs=1, objective="kl", targets=targets, validation_fraction=0,
                                 calibrate_temperature=False)
        _, info = train_orchestrator(cfg, ensemble, pairs, progress=False)
        means[targets] = torch.tensor(info["mean_target"])
    chosen = [p.chosen for p in pairs]
    raw = implicit_preference_weights(ensemble.score_raw(pairs.prompts, chosen)).mean(0)
    assert torch.allclose(means["raw"], raw, atol=1e-6)
    assert torch.allclose(means["normalized"], implicit_preference_weights(ensemble.score(pairs.prompts, chosen)).mean(0),
                          atol=1e-6)
    assert not torch.allclose(means["raw"], means["normalized"], atol=1e-3)
    with pytest.raises(ConfigError, match="targets: expected one of"):
        OrchestratorConfig(targets="logits")
