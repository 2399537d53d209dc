"""build-benchmark: the mixed-intent reward stack (training ensemble, independent judge, orchestrator) by one recipe."""

import json

import pytest
import torch

from preforch.cli import main
from preforch.errors import ConfigError
from preforch.pipelines.benchmark import weights_by_source
from preforch.pipelines.config import BenchmarkConfig


def test_weights_by_source_on_a_hand_computed_case():
    w = torch.tensor([[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]])
    table = weights_by_source(w, ["a", "a", "b"], ["x", "y"])
    assert list(table) == ["a", "b"] and table["a"]["n"] == 2 and table["b"]["n"] == 1
    assert table["a"]["mean"] == pytest.approx({"x": 0.3, "y": 0.7})
    assert table["a"]["std"]["x"] == pytest.approx(0.1414, abs=1e-4) and table["b"]["std"]["x"] == 0.0


def test_a_recipe_naming_an_objective_the_ensemble_lacks_stops_with_the_name(tmp_path, capsys):
    recipe = tmp_path / "bench.yaml"
    recipe.write_text("objective_reference: [correctness=arithmetic-smollm2:train]\n"
                      f"output_dir: {tmp_path / 'out'}\n")
    assert main(["build-benchmark", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "objective_reference: objective(s) ['correctness'] not among the ensemble's" in err
    assert "'arithmetic'" in err and not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="judge_objective_reference: expected objective=data"):
        BenchmarkConfig(judge_objective_reference=["arithmetic"])


def test_build_benchmark_on_the_mixed_intent_recipe(tiny_encoder_dir, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["build-benchmark", "--config", "preforch/recipes/mixed_intent.yaml", "--output_dir", str(out),
            "--reward_base_model", tiny_encoder_dir, "--max_train_pairs", "12", "--max_eval_pairs", "8"]
    assert main(args) == 0
    r = json.loads((out / "benchmark.json").read_text())
    assert r["objectives"] == ["helpful", "harmless", "arithmetic"]
    assert list(r["weights_by_source"]) == ["hh-helpful", "hh-harmless", "arithmetic"]
    for w in r["weights_by_source"].values():
        assert sum(w["mean"].values()) == pytest.approx(1.0, abs=1e-5)
    assert set(r["reward_models"]["judge"]) == {"helpful", "harmless"}
    report = (out / "report.md").read_text()
    assert "## The orchestrator's weights by source" in report and "| arithmetic | 8 |" in report
    # exact match takes its z-score from the problems alone: half the replies of right-over-wrong pairs are right
    for folder in (out / "rewards", out / "judge" / "rewards"):
        ens = json.loads((folder / "ensemble.json").read_text())
        assert ens["normalization"]["mean"][2] == pytest.approx(0.5)
        assert ens["sources"][-1] == {"kind": "rule", "objective": "arithmetic", "rule": "exact_match"}
    assert "arithmetic" in capsys.readouterr().out
    card = (out / "orchestrator" / "README.md").read_text()  # every trained artifact carries a model card
    assert "preference-orchestrator" in card and "Anthropic/hh-rlhf" in card and "combined-reward accuracy" in card
    # a re-run reuses every stage
    stamp = (out / "orchestrator" / "train_metrics.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "orchestrator" / "train_metrics.json").stat().st_mtime_ns == stamp


def test_a_recipe_whose_judge_trains_on_the_evaluation_prompts_stops_before_training(tmp_path, capsys):
    recipe = tmp_path / "bench.yaml"
    recipe.write_text("judge_train_data: [hh-helpful:test, hh-harmless:test]\n"
                      "eval_data: [hh-helpful:test#eval, hh-harmless:test#eval, arithmetic-smollm2:test]\n"
                      f"output_dir: {tmp_path / 'out'}\n")
    assert main(["build-benchmark", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: judge_train_data: the judge's training data" in err
    assert "first human turn(s) with the evaluation prompts" in err and not (tmp_path / "out").exists()


def test_the_independent_recipe_trains_its_judge_on_another_backbone_and_half(tiny_encoder_dir, tiny_policy_dir, tmp_path):
    out = tmp_path / "bench"
    assert main(["build-benchmark", "--config", "preforch/recipes/mixed_intent_independent.yaml", "--output_dir", str(out),
                 "--reward_base_model", tiny_encoder_dir, "--judge_base_model", tiny_policy_dir,
                 "--max_train_pairs", "12", "--max_eval_pairs", "8"]) == 0
    judge = json.loads((out / "judge" / "reward_model" / "train_rm_config.json").read_text())["config"]
    assert judge["base_model"] == tiny_policy_dir and judge["pooling"] == "last" and judge["learning_rate"] == 3e-5
    assert judge["train_data"] == ["hh-helpful:test#judge", "hh-harmless:test#judge"]
    r = json.loads((out / "benchmark.json").read_text())
    assert set(r["reward_models"]["judge"]) == {"helpful", "harmless"} and r["weights_by_source"]["arithmetic"]["n"] == 8
