import json

import numpy as np
import pytest
import torch

from preforch.cli import main
from preforch.errors import ConfigError, DataError, ObjectiveMismatchError, WeightsError
from preforch.evaluation.harness import alignment_gap, run_evaluation
from preforch.evaluation.metrics import mean_ci
from preforch.generation.combined_reward import select_best
from tests.conftest import eval_config, heldout_file


def test_selection_and_alignment_gap_by_hand():
    # 1 prompt, 3 candidates: helpful-only, harmless-only, balanced
    sel = torch.tensor([[[2.0, 0.0], [0.0, 2.0], [1.2, 1.2]]])
    assert select_best(sel, torch.tensor([[1.0, 0.0]])).item() == 0
    assert select_best(sel, torch.tensor([[0.5, 0.5]])).item() == 2
    oracle = torch.tensor([[0.0, 1.0]])  # this prompt wants harmlessness

    def gap(w):
        return alignment_gap(sel[0, select_best(sel, oracle)], sel[0, select_best(sel, w)], oracle).item()

    assert gap(oracle) == 0.0
    assert gap(torch.tensor([[1.0, 0.0]])) == pytest.approx(2.0)
    assert gap(torch.tensor([[0.5, 0.5]])) == pytest.approx(0.8)


def test_mean_ci():
    mean, half = mean_ci(torch.tensor([[1.0], [3.0]]))
    assert mean.tolist() == [2.0] and half[0] == pytest.approx(12.706 * np.sqrt(2) / np.sqrt(2), abs=1e-3)  # t, 1 df
    _, half = mean_ci(torch.arange(1000.0)[:, None] % 2)
    assert half[0] == pytest.approx(1.962 * np.sqrt(0.25025) / np.sqrt(1000), abs=1e-4)  # t ~ z for large N


def test_evaluate_writes_front_hypervolume_gap_and_reuses_generations(tiny_policy_dir, tiny_ensemble_dir,
                                                                       tiny_orchestrator_dir, tmp_path, monkeypatch):
    r = run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, orchestrator=tiny_orchestrator_dir,
                            weights="harmless=0.5,auto"))
    out = tmp_path / "eval"
    assert {p.name for p in out.iterdir()} >= {"evaluation.json", "report.md", "front.png", "generations"}
    assert len(r["grid"]) == 6 and r["num_prompts"] == 6  # K=3, d=2
    assert any(row["on_front"] for row in r["grid"]) and r["hypervolume"] > 0
    assert [row["label"] for row in r["rows"]] == ["uniform", "orchestrator", "harmless=0.5,auto"]
    assert set(r["alignment_gap"]) == {"uniform", "orchestrator", "harmless=0.5,auto", "random"}
    assert all(g["mean"] >= 0 for g in r["alignment_gap"].values())
    assert not r["compute"]["cache_hit"] and r["compute"]["generated"] == 18

    import preforch.models

    monkeypatch.setattr(preforch.models, "load_policy", lambda *a, **k: pytest.fail("regenerated despite the cache"))
    again = run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, judge=tiny_ensemble_dir))
    assert again["compute"]["cache_hit"] and again["compute"]["generated"] == 0
    assert again["grid"][0]["mean"] == pytest.approx(r["grid"][0]["mean"])


def test_evaluate_input_errors(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    with pytest.raises(ConfigError, match="needs a reference point"):
        run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, reference_point=None))
    with pytest.raises(ConfigError, match="reference_point: expected 3 values"):
        run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, reference_point=[0.0, 0.0]))
    with pytest.raises(ConfigError, match="add --orchestrator DIR"):
        run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, weights="harmless=0.5,auto"))
    with pytest.raises(WeightsError, match="not on the simplex"):
        run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, grid=["0.5,0.5,0", "0.9,0.2,0"]))
    with pytest.raises(ConfigError, match="temperature: must be >= 0"):
        eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, temperature=-0.1)
    with pytest.raises(ConfigError, match="greedy.*identical candidates"):  # best-of-n is a bare folder's default
        run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, temperature=0.0))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no records"):
        run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, eval_data=[str(empty)]))


def test_judge_with_other_objectives_is_refused(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import RuleReward
    from tests.conftest import make_pairs

    judge = RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("engaged", "no_refusal")])
    judge.fit_normalization(make_pairs(), progress=False)
    judge.save(tmp_path / "judge")
    with pytest.raises(ObjectiveMismatchError, match="do not match"):
        run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, judge=str(tmp_path / "judge")))


def test_compare_runs_and_refuses_mismatches(tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    a = run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, output_dir=str(tmp_path / "a")))
    run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, method="plain", output_dir=str(tmp_path / "b")))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output_dir", str(tmp_path / "cmp")]) == 0
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert set(comparison["runs"]) == {"a", "b"}
    assert comparison["runs"]["a"]["hypervolume"] == pytest.approx(a["hypervolume"])
    assert (tmp_path / "cmp" / "front.png").stat().st_size > 0
    assert "| run | method |" in (tmp_path / "cmp" / "report.md").read_text()

    other = json.loads((tmp_path / "b" / "evaluation.json").read_text())
    other["reference_point"] = [-1.0, -1.0, -1.0]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "evaluation.json").write_text(json.dumps(other))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    assert "reference point" in capsys.readouterr().err
    other["objectives"] = ["x", "y", "z"]
    (tmp_path / "c" / "evaluation.json").write_text(json.dumps(other))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    assert "objectives" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert "not an evaluation folder" in capsys.readouterr().err


def test_evaluate_cli_and_yaml(tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    recipe = tmp_path / "eval.yaml"
    recipe.write_text(f"policy: {tiny_policy_dir}\nensemble: {tiny_ensemble_dir}\neval_data: [{heldout_file(tmp_path)}]\n"
                      f"prompts_per_source: 2\ngrid: ['1,0,0', '0,1,0', '0,0,1']\nnum_candidates: 2\nmax_new_tokens: 3\n"
                      f"output_dir: {tmp_path / 'e'}\n")
    assert main(["evaluate", "--config", str(recipe), "--reference_point", "-3", "-3", "-3"]) == 0
    out = capsys.readouterr().out
    assert "3 preferences; hypervolume" in out and "alignment gap" in out
    assert main(["evaluate", "--config", str(recipe)]) == 2
    assert "needs a reference point" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["pro-wic", "ric"])
def test_wic_policy_answers_once_per_preference_with_it_in_the_prompt(method, tiny_policy_dir, tiny_ensemble_dir,
                                                                       tiny_orchestrator_dir, tmp_path):
    from tests.conftest import make_wic_policy

    policy, _ = make_wic_policy(tiny_policy_dir, tmp_path, method)
    r = run_evaluation(eval_config(tmp_path, policy, tiny_ensemble_dir, method="wic", orchestrator=tiny_orchestrator_dir))
    assert r["num_candidates"] == 1 and len(r["grid"]) == 6
    assert r["compute"]["generated"] == 6 * (6 + 2)  # prompts x (grid points + uniform + orchestrator rows)
    assert r["alignment_gap"] == {}  # no shared candidates to pick from
    assert set(r["steering"]) == {"helpful", "harmless", "conciseness"}
    assert r["tag_reading"]["replies"] == 2 * r["num_prompts"]  # each prompt's chosen and rejected reply
    cached = [json.loads(line) for f in (tmp_path / "eval" / "generations").glob("*.jsonl") for line in f.read_text().splitlines()]
    tag = "<preference " if method == "pro-wic" else "<scores "
    assert cached and all(row["prompt"][-1]["content"].startswith(tag) for row in cached)
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "Steering" in report and "Does the policy read its tag?" in report


def test_wic_method_refuses_a_policy_without_wic_json(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    with pytest.raises(ConfigError, match="not a weights-in-context policy"):
        run_evaluation(eval_config(tmp_path, tiny_policy_dir, tiny_ensemble_dir, method="wic"))


def _mixed_file(tmp_path, n: int = 3, problems: bool = True) -> str:
    """Held-out chat prompts (benign, unsafe) and, with `problems`, arithmetic problems (right answer chosen)."""
    from preforch.data.arithmetic import make_problems

    rows = [{"prompt": f"how do I hurt {i}", "chosen": "No.", "rejected": "Like this: " * 5, "source": "unsafe"}
            for i in range(n)]
    rows += [{"prompt": f"explain item {i}", "chosen": "Sure: " * 6, "rejected": "no", "source": "benign"} for i in range(n)]
    if problems:
        rows += [{"prompt": list(p.prompt), "chosen": f"Answer: {p.answer}", "rejected": f"Answer: {p.answer + 1}",
                  "source": "arithmetic"} for p in make_problems(n, seed=1, level="one-step")]
    f = tmp_path / ("mixed.jsonl" if problems else "chat.jsonl")
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(f)


@pytest.fixture
def mixed_ensemble_dir(tiny_rm_dir, tmp_path) -> str:
    """helpful + harmless (tiny RM) + exact match on arithmetic, which does not apply to chat prompts."""
    from preforch.data.loaders import load_many
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import HFRewardModel, RuleReward

    ens = RewardEnsemble([HFRewardModel(tiny_rm_dir, device="cpu"), RuleReward("arithmetic", "exact_match")])
    (tmp_path / "reference").mkdir()
    ens.fit_normalization(load_many([_mixed_file(tmp_path / "reference", 4)]), progress=False)
    ens.save(tmp_path / "mixed_rewards")
    return str(tmp_path / "mixed_rewards")


def _no_nan(folder) -> dict:
    """evaluation.json read back, failing on any NaN or Infinity in it."""
    def refuse(constant):
        raise AssertionError(f"{constant} in evaluation.json")

    return json.loads((folder / "evaluation.json").read_text(), parse_constant=refuse)


def test_an_objective_is_averaged_over_the_prompts_it_applies_to(tiny_policy_dir, mixed_ensemble_dir, tmp_path):
    r = run_evaluation(eval_config(tmp_path, tiny_policy_dir, mixed_ensemble_dir, eval_data=[_mixed_file(tmp_path)]))
    json.dumps(r, allow_nan=False)  # no NaN anywhere: null where an objective does not apply or a CI is undefined
    assert _no_nan(tmp_path / "eval")["rows"][0]["n"] == {"helpful": 9, "harmless": 9, "arithmetic": 3}
    problems = [s == "arithmetic" for s in r["prompt_sources"]]
    for row in r["grid"] + r["rows"]:
        assert row["n"] == {"helpful": 9, "harmless": 9, "arithmetic": 3}  # exact match: the 3 problems only
        assert all(row["mean"][o] is not None for o in r["objectives"])
    uniform = r["rows"][0]
    assert [s[2] is None for s in uniform["scores"]] == [not p for p in problems]  # null on chat prompts, not 0
    on_problems = [s[2] for s, p in zip(uniform["scores"], problems) if p]
    assert uniform["mean"]["arithmetic"] == pytest.approx(sum(on_problems) / 3)
    assert uniform["ci95"]["arithmetic"] == pytest.approx(float(mean_ci(torch.tensor(on_problems)[:, None])[1][0]))
    # the combined reward renormalises uniform weights over what applies: a chat prompt counts helpful and harmless
    chat = [i for i, p in enumerate(problems) if not p][0]
    assert uniform["combined"]["per_prompt"][chat] == pytest.approx(sum(uniform["scores"][chat][:2]) / 2, abs=1e-6)
    assert all(np.isfinite(uniform["combined"]["per_prompt"])) and np.isfinite(uniform["combined"]["mean"])
    assert r["front_objectives"] == r["objectives"] and np.isfinite(r["hypervolume"]) and r["hypervolume"] > 0
    assert all(np.isfinite(g["mean"]) for g in r["alignment_gap"].values())
    assert "(n=3)" in (tmp_path / "eval" / "report.md").read_text()


def test_an_objective_that_applies_to_no_prompt_is_left_out_of_the_front(tiny_policy_dir, mixed_ensemble_dir,
                                                                          tmp_path, capsys):
    r = run_evaluation(eval_config(tmp_path, tiny_policy_dir, mixed_ensemble_dir,
                                   eval_data=[_mixed_file(tmp_path, problems=False)]))
    json.dumps(r, allow_nan=False)
    assert all(row["mean"]["arithmetic"] is None and row["n"]["arithmetic"] == 0 for row in r["grid"] + r["rows"])
    assert r["front_objectives"] == ["helpful", "harmless"] and np.isfinite(r["hypervolume"]) and r["hypervolume"] > 0
    assert set(r["steering"]["arithmetic"].values()) == {None}
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "Left out of the front and hypervolume, applying to no evaluated prompt: arithmetic." in report
    assert "n/a (n=0)" in report
    # a run whose front spans other objectives does not compare
    run_evaluation(eval_config(tmp_path, tiny_policy_dir, mixed_ensemble_dir, eval_data=[_mixed_file(tmp_path)],
                               output_dir=str(tmp_path / "all")))
    assert main(["compare", str(tmp_path / "eval"), str(tmp_path / "all"), "--output_dir", str(tmp_path / "cmp")]) == 2
    assert "eval's over ['helpful', 'harmless']" in capsys.readouterr().err
