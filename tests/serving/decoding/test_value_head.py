import json

import pytest
import torch

from preforch.data.arithmetic import make_problems
from preforch.errors import ConfigError
from preforch.generation.multi_head import MultiHeadLM
from preforch.serving.decoding.guided_decoding import BOUNDARIES
from preforch.serving.decoding.value_head import ValueHead, choose_weight_decay, fit_probe, hindsight_rows, step_prefixes


def test_every_step_prefix_is_labelled_by_how_its_reply_ended():
    assert step_prefixes("3 + 4 = 7. Then 7 - 2 = 5. Answer: 5", BOUNDARIES["sentence"]) == [
        "3 + 4 = 7. ", "3 + 4 = 7. Then 7 - 2 = 5. ", "3 + 4 = 7. Then 7 - 2 = 5. Answer: 5"]
    assert step_prefixes("no boundary", BOUNDARIES["sentence"]) == ["no boundary"]
    problem = make_problems(1, seed=0, level="one-step")[0]
    rows = hindsight_rows([problem], [[f"So. Answer: {problem.answer}", "Answer: -1"]], BOUNDARIES["sentence"])
    assert [(prefix, label) for _, prefix, label in rows] == [
        ("So. ", 1.0), (f"So. Answer: {problem.answer}", 1.0), ("Answer: -1", 0.0)]


def test_the_probe_learns_a_separable_value():
    torch.manual_seed(0)
    x = torch.randn(200, 8) * 5 + 3  # unscaled features: the probe standardises them itself
    y = (x[:, 2] > 3).float()
    weight, bias = fit_probe(x, y, weight_decay=1e-4)
    assert weight.shape == (8,) and ((x @ weight + bias > 0).float() == y).float().mean() > 0.97
    assert weight[2].abs() == weight.abs().max()


def test_the_penalty_is_chosen_on_whole_problems():
    torch.manual_seed(0)
    signal = torch.randn(240, 8)
    labels = (signal[:, 0] > 0).float()
    best, losses = choose_weight_decay(signal, labels, torch.arange(240) // 4)
    assert best == 1e-4 and losses[1e-4] < losses[1.0]  # a real signal: the lightest penalty fits best
    # Pure noise, each problem's rows identical (as one problem's prefixes share its label): split row-wise, the
    # copies would leak the label and reward the lightest penalty; split by problem, the heaviest wins.
    noise, coin = torch.randn(30, 40), (torch.rand(30) < 0.3).float()
    best, losses = choose_weight_decay(noise.repeat_interleave(4, 0), coin.repeat_interleave(4), torch.arange(120) // 4)
    assert best == 1.0 and losses[1.0] < losses[1e-4]


@pytest.fixture
def tiny_mahalo(tiny_policy_dir, tmp_path):
    from preforch.models import load_policy

    lm, tok = load_policy(tiny_policy_dir, dtype=torch.float32, device="cpu")
    MultiHeadLM.from_base(lm, ("helpful", "harmless", "arithmetic"), noise_std=0.5).save_pretrained(tmp_path / "m", tok)
    return str(tmp_path / "m")


def test_train_value_head_fits_saves_and_the_mahalo_kind_guides_with_it(tiny_policy_dir, tiny_mahalo, tiny_ensemble_dir,
                                                                       tmp_path, monkeypatch, capsys):
    from preforch.cli import main
    from preforch.serving.policies.folder import load_preference_policy
    import preforch.serving.decoding.value_head as vh

    out = tmp_path / "vh"
    args = ["train-value-head", "--policy", tiny_mahalo, "--backbone", tiny_policy_dir, "--problems", "6",
            "--eval_problems", "4", "--samples", "3", "--max_new_tokens", "6", "--output_dir", str(out)]
    assert main(args) == 2 and not out.exists()  # a random model is never right: nothing written
    assert "every sample was wrong" in capsys.readouterr().err
    monkeypatch.setattr(vh, "check", lambda reply, answer: len(reply) % 2 == 0)  # stands in for a model that is sometimes right
    assert main(args + ["--weights", "helpful=0,harmless=0,arithmetic=1"]) == 0
    record = json.loads((out / "value_head.json").read_text())
    assert record["backbone"] == tiny_policy_dir and record["weights"] == [0.0, 0.0, 1.0]
    assert 0 <= record["heldout"]["auroc"] <= 1 and record["prefixes"]["train"] >= 18
    assert str(record["weight_decay"]) in record["cv_log_loss"]  # chosen by cross-validation
    head = ValueHead.load(out)
    problem = make_problems(1, seed=0, level="one-step")[0]
    values = head.score(problem.prompt, ["So", "So the answer is"])
    assert values.shape == (2,) and ((values > 0) & (values < 1)).all()

    policy = load_preference_policy(tiny_mahalo, guide=tiny_ensemble_dir, step_candidates=2, value_head=str(out),
                                    min_step_tokens=2, max_step_tokens=3)
    _, tok = policy.model_and_tokenizer()
    rows = [tok(t, add_special_tokens=False).input_ids for t in ("So", "So the answer is")]
    scores = policy.step_scores(problem.prompt, torch.tensor([[1, 2]]), rows, torch.tensor([0.2, 0.2, 0.6]))
    assert torch.allclose(scores.values[:, 2], (values - 0.5) / 0.5, atol=1e-5)  # unfinished: the value head's, z-scored


def test_a_value_head_and_rollouts_together_and_a_missing_folder_are_refused(tiny_mahalo, tiny_ensemble_dir, tmp_path):
    from preforch.serving.policies.folder import load_preference_policy

    with pytest.raises(ConfigError, match="rollouts and value_head both"):
        load_preference_policy(tiny_mahalo, guide=tiny_ensemble_dir, step_candidates=2, rollouts=2,
                               value_head=str(tmp_path))
    with pytest.raises(ConfigError, match="no value_head.json; preforch train-value-head"):
        ValueHead.load(tmp_path)
