import json

import pytest
import torch

from preforch.alignment.config import WicConfig
from preforch.alignment.wic import conditioning_values, make_spec, quantile_thresholds, rejection_mask, sft_rows
from preforch.alignment.wic_train import train_wic
from preforch.cli import main
from preforch.data.conditioning import has_tag, ric_targets
from preforch.errors import ConfigError
from preforch.generation.wic_methods import WIC_METHODS, WicMethod, self_weights
from preforch.generation.wic_spec import SPEC_FILE, WicSpec, load_wic_spec
from preforch.io import atomic_write_json
from preforch.rewards.scores import Scores
from tests.conftest import make_pairs, make_wic_policy


def test_self_weights_are_on_the_simplex_and_follow_the_scores():
    scores = torch.tensor([[2.0, 0.0, -1.0], [-1.0, 1.0, 0.5], [0.0, 0.0, 0.0]])
    w = self_weights(scores, tau=1.0)
    assert torch.allclose(w.sum(-1), torch.ones(3))
    assert w.argmax(-1).tolist() == [0, 1, 0] and torch.allclose(w[2], torch.full((3,), 1 / 3))
    assert w[0, 0] > w[0, 1] > w[0, 2], "higher score, higher weight"
    assert self_weights(scores, tau=0.1)[0, 0] > w[0, 0], "lower tau, sharper weights"
    assert torch.allclose(conditioning_values("pro-wic", scores, 1.0).values, w)
    assert torch.equal(conditioning_values("ric", scores, 1.0).values, scores)
    with pytest.raises(ConfigError, match="method"):
        conditioning_values("dpo", scores, 1.0)


def test_quantile_thresholds_and_rejection_mask_on_hand_made_scores():
    reference = torch.tensor([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [3.0, 40.0], [4.0, 50.0]])
    assert quantile_thresholds(reference, 0.5).tolist() == [2.0, 30.0]
    thresholds = quantile_thresholds(reference, 0.75)
    assert thresholds.tolist() == [3.0, 40.0]
    samples = torch.tensor([[3.0, 0.0], [0.0, 40.0], [2.9, 39.9], [5.0, 50.0], [-1.0, -1.0]])
    assert rejection_mask(samples, thresholds).tolist() == [True, True, False, True, False], "ANY objective suffices"


def test_spec_round_trip_and_errors(tmp_path):
    spec = make_spec("ric", ["a", "b"], 0.5, torch.arange(40.0).reshape(20, 2))
    assert spec.kind == "scores" and spec.score_low[0] < spec.score_high[0]
    atomic_write_json(tmp_path / SPEC_FILE, spec.to_dict())
    assert load_wic_spec(tmp_path) == spec
    w = torch.tensor([[0.9, 0.1]])
    assert torch.allclose(spec.prompt_values(w), ric_targets(w, torch.tensor(spec.score_low), torch.tensor(spec.score_high)))
    with pytest.raises(ConfigError, match="not a weights-in-context policy"):
        load_wic_spec(tmp_path / "nowhere")
    (tmp_path / SPEC_FILE).write_text('{"method": "ric"}')
    with pytest.raises(ConfigError, match="malformed wic.json"):
        load_wic_spec(tmp_path)


def test_sft_rows_carry_the_tag_of_each_samples_values_and_preferences_are_chosen_by_source():
    from preforch.alignment.wic_online import choose_preferences

    spec = WicSpec("pro-wic", ("a", "b"), 1.0, (-1.0, -1.0), (1.0, 1.0))
    rows = sft_rows([({"role": "user", "content": "hi"},)], ["hello"], torch.tensor([[0.25, 0.75]]), spec)
    assert rows == [{"prompt": [{"role": "user", "content": "<preference a=0.25 b=0.75>\nhi"}],
                     "completion": [{"role": "assistant", "content": "hello"}]}]
    prompts = [({"role": "user", "content": f"q{i}"},) for i in range(5)]
    random_w = choose_preferences("random", prompts, ("a", "b", "c"), None, seed=1)
    assert random_w.shape == (5, 3) and torch.allclose(random_w.sum(-1), torch.ones(5))
    assert not torch.equal(random_w, choose_preferences("random", prompts, ("a", "b", "c"), None, seed=2))
    assert torch.allclose(choose_preferences("uniform", prompts, ("a", "b"), None, 0), torch.full((5, 2), 0.5))
    with pytest.raises(ConfigError, match="preference_source"):
        choose_preferences("best", prompts, ("a", "b"), None, 0)


def _write_pairs(path, pairs):
    path.write_text("\n".join(json.dumps({"prompt": list(p.prompt), "chosen": p.chosen, "rejected": p.rejected})
                              for p in pairs))
    return str(path)


def _offline_args(method, policy, ensemble, data, out, *extra):
    return ["train-wic", "--stage", "offline", "--method", method, "--policy", policy, "--ensemble", ensemble,
            "--train_data", data, "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--learning_rate", "1e-2", "--max_length", "128", *extra]


@pytest.mark.parametrize("method", ["pro-wic", "ric"])
def test_offline_sft_changes_parameters_and_writes_policy_spec_and_accounting(
        method, tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    data = _write_pairs(tmp_path / "pairs.jsonl", make_pairs(8))
    out = tmp_path / "run"
    assert main(_offline_args(method, tiny_policy_dir, tiny_ensemble_dir, data, out)) == 0
    assert "policy saved to" in capsys.readouterr().out
    before = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    after = AutoModelForCausalLM.from_pretrained(out / "policy")
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    spec = load_wic_spec(out / "policy")
    assert spec.method == method and spec.objectives == ("helpful", "harmless", "conciseness") and spec.tau == 1.0
    run = json.loads((out / "wic_run.json").read_text())["offline"]
    assert run["offline_samples"] == run["sft_samples"] == 16 and run["sft_steps"] == 2
    assert run["sft_tokens"] > 0 and run["config"]["method"] == method
    assert (out / "log.jsonl").is_file()


def _fake_scorer(prompts, replies):
    """Deterministic scores from the reply text; the reward sources must never see the tag."""
    assert not any(has_tag(p) for p in prompts)
    digits = [[sum(map(ord, r)) // 10 ** i % 10 for i in range(3)] for r in replies]  # a pseudo-random "score" per objective
    return Scores.dense(torch.tensor(digits, dtype=torch.float32) / 5 - 1)


@pytest.mark.parametrize("method, source, online_filter", [("pro-wic", "orchestrator", "ric"), ("ric", "random", "ric"),
                                                         ("ric", "random", "offline-thresholds")])
def test_one_online_iteration_relabels_filters_and_accounts(method, source, online_filter, tiny_policy_dir, tiny_ensemble_dir,
                                                           tiny_orchestrator_dir, tmp_path):
    policy, spec = make_wic_policy(tiny_policy_dir, tmp_path, method)
    pairs = make_pairs(8)
    out = tmp_path / "online"
    cfg = WicConfig(method=method, stage="online", policy=policy, ensemble=tiny_ensemble_dir, orchestrator=tiny_orchestrator_dir,
                    train_data=[_write_pairs(tmp_path / "pairs.jsonl", pairs)], online_data=[str(tmp_path / "pairs.jsonl")],
                    online_prompts=4, num_generations=3, max_new_tokens=6, offline_mix=2, sft_steps_per_iteration=1,
                    per_device_train_batch_size=4, max_length=128, learning_rate=1e-2, output_dir=str(out),
                    online_filter=online_filter)
    assert cfg.preference == source
    result = train_wic(cfg, scorer=_fake_scorer)
    rows = [json.loads(line) for line in (out / "online_samples_0.jsonl").read_text().splitlines()]
    offline = _fake_scorer([p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs]).values
    generated = torch.tensor([r["scores"] for r in rows if r["response"].strip()])
    # RiC: this round's generated scores set the levels; the earlier filter took them from the offline scores
    thresholds = torch.quantile(generated if online_filter == "ric" else offline, 0.7, dim=0)
    assert len(rows) == 12
    for r in rows:
        scores = _fake_scorer([tuple(r["prompt"])], [r["response"]]).values[0]
        assert r["scores"] == pytest.approx(scores.tolist())
        expected = torch.softmax(scores, -1) if method == "pro-wic" else scores
        assert r["relabelled"] == pytest.approx(expected.tolist(), abs=1e-6), "relabelled with its own scores"
        assert r["kept"] == (bool((scores >= thresholds).any()) and bool(r["response"].strip()))
        pref = torch.tensor(r["preference"])
        in_prompt = pref if method == "pro-wic" else ric_targets(pref, torch.tensor(spec.score_low), torch.tensor(spec.score_high))
        assert r["prompt_values"] == pytest.approx(in_prompt.tolist(), abs=1e-6)
    kept = sum(r["kept"] for r in rows)
    assert 0 < kept < 12, "the filter should keep some samples and drop others here"
    it = json.loads((out / "wic_run.json").read_text())["online"]["iterations"][0]
    assert it == result["iterations"][0]
    assert (it["generated"], it["kept"], it["offline_mixed"], it["sft_samples"]) == (12, kept, 2, kept + 2)
    passing = int((offline >= torch.quantile(offline, 0.7, dim=0)).any(-1).sum())
    assert it["offline_passing_filter"] == (passing if online_filter == "ric" else len(offline))
    assert it["empty"] == sum(not r["response"].strip() for r in rows)
    assert it["kept_fraction"] == pytest.approx(kept / 12) and it["thresholds"] == pytest.approx(thresholds.tolist())
    assert it["sft_steps"] == 1 and it["sft_tokens"] > 0
    assert load_wic_spec(out / "policy") == spec, "the online policy keeps the offline spec"
    assert "Weights in context" in (out / "policy" / "README.md").read_text()


class ToyWic(WicMethod):
    """A WiC method of the test's own: each sample is tagged with all weight on its best-scoring objective, and a
    preference is written in as it is; online it samples under uniform preferences."""

    tag = "weights"
    preference_source = "uniform"

    @classmethod
    def labels(cls, normalized, tau):
        best = torch.nn.functional.one_hot(normalized.filled(-torch.inf).argmax(-1), normalized.values.shape[-1])
        return Scores(best.float(), normalized.applies)

    @classmethod
    def prompt_values(cls, preferences, spec):
        return preferences


def test_a_new_wic_method_is_one_row_and_runs_through_train_wic(tiny_policy_dir, tiny_ensemble_dir, tmp_path,
                                                                monkeypatch, capsys):
    """A toy row in WIC_METHODS trains offline through the CLI and online through train_wic with nothing else
    changed: the config accepts it, its labels tag the samples, its spec is read back, its preference source and
    prompt values drive the online stage."""
    monkeypatch.setitem(WIC_METHODS, "toy", f"{__name__}:ToyWic")
    data = _write_pairs(tmp_path / "pairs.jsonl", make_pairs(8))
    out = tmp_path / "toy"
    assert main(_offline_args("toy", tiny_policy_dir, tiny_ensemble_dir, data, out)) == 0
    spec = load_wic_spec(out / "policy")
    assert spec.method == "toy" and spec.kind == "weights"
    scores = Scores.dense(torch.tensor([[0.5, -1.0, 2.0]]))
    assert conditioning_values("toy", scores, 1.0).values.tolist() == [[0.0, 0.0, 1.0]]
    assert sft_rows([({"role": "user", "content": "hi"},)], ["a"], conditioning_values("toy", scores, 1.0), spec)[0][
        "prompt"][0]["content"].startswith("<preference helpful=0.00 harmless=0.00 conciseness=1.00>")

    cfg = WicConfig(method="toy", stage="online", policy=str(out / "policy"), ensemble=tiny_ensemble_dir,
                    train_data=[data], online_data=[data], online_prompts=4, num_generations=2, max_new_tokens=4,
                    offline_mix=2, sft_steps_per_iteration=1, per_device_train_batch_size=4, max_length=128,
                    output_dir=str(tmp_path / "toy_online"))
    assert cfg.preference == "uniform"
    train_wic(cfg, scorer=_fake_scorer)
    rows = [json.loads(line) for line in (tmp_path / "toy_online" / "online_samples_0.jsonl").read_text().splitlines()]
    for r in rows:
        label = ToyWic.labels(_fake_scorer([tuple(r["prompt"])], [r["response"]]), 1.0).values[0]
        assert r["relabelled"] == label.tolist() and r["prompt_values"] == pytest.approx([1 / 3] * 3)
    with pytest.raises(ConfigError, match="method: expected one of pro-wic, ric, toy, got 'dpo'"):
        WicConfig(method="dpo")


def _expect_error(argv, message, out, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists(), "nothing half-written"


def test_bad_input_fails_before_writing_anything(tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir, tmp_path, capsys):
    from preforch.data.schema import PreferencePair, PreferenceDataset
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import RuleReward

    out = tmp_path / "run"
    data = _write_pairs(tmp_path / "pairs.jsonl", make_pairs(4))
    tagged = PreferencePair(({"role": "user", "content": "<preference helpful=1.0>\nhi"},), "a", "b")
    bad_data = _write_pairs(tmp_path / "tagged.jsonl", PreferenceDataset([tagged]))
    _expect_error(_offline_args("pro-wic", tiny_policy_dir, tiny_ensemble_dir, bad_data, out),
                  "already starts with a conditioning tag", out, capsys)
    follow_up = PreferencePair(({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                {"role": "user", "content": "and?"}), "a", "b")
    dialogue = _write_pairs(tmp_path / "dialogue.jsonl", PreferenceDataset([follow_up]))
    _expect_error([*_offline_args("pro-wic", tiny_policy_dir, tiny_ensemble_dir, dialogue, out), "--max_user_turns", "1"],
                  "no preference pairs with at most 1 user turn(s) (--max_user_turns)", out, capsys)
    for flags, message in [(["--method", "dpo"], "method: expected one of pro-wic, ric, got 'dpo'"),
                           (["--stage", "warm"], "stage: expected one of"),
                           (["--preference_source", "best"], "preference_source: expected one of"),
                           (["--filter_quantile", "1.5"], "filter_quantile: must be in (0, 1)"),
                           (["--max_user_turns", "0"], "max_user_turns: must be > 0")]:
        _expect_error(["train-wic", *flags, "--output_dir", str(out)], message, out, capsys)

    online = ["train-wic", "--stage", "online", "--ensemble", tiny_ensemble_dir, "--orchestrator", tiny_orchestrator_dir,
              "--train_data", data, "--online_data", data, "--output_dir", str(out)]
    _expect_error([*online, "--policy", tiny_policy_dir], "not a weights-in-context policy (no wic.json)", out, capsys)
    ric_policy, _ = make_wic_policy(tiny_policy_dir, tmp_path, "ric")
    _expect_error([*online, "--policy", ric_policy], "trained with method 'ric', but --method is 'pro-wic'", out, capsys)
    _expect_error([*online, "--policy", ric_policy, "--method", "ric", "--tau", "0.5"], "differs from the tau", out, capsys)

    rules = RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("engaged", "no_refusal")])
    rules.fit_normalization(make_pairs(), progress=False)
    rules.save(tmp_path / "rules")
    _expect_error([*online, "--policy", ric_policy, "--method", "ric", "--ensemble", str(tmp_path / "rules")],
                  "do not match the reward ensemble", out, capsys)
    rules_policy, _ = make_wic_policy(tiny_policy_dir, tmp_path, "pro-wic", ("conciseness", "engaged"))
    _expect_error([*online, "--policy", rules_policy, "--ensemble", str(tmp_path / "rules")],
                  f"orchestrator {tiny_orchestrator_dir}: objectives", out, capsys)


def test_online_resume_continues_after_the_last_finished_iteration(tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    from dataclasses import replace

    policy, _ = make_wic_policy(tiny_policy_dir, tmp_path, "ric")
    data = _write_pairs(tmp_path / "pairs.jsonl", make_pairs(8))
    out = tmp_path / "online"
    cfg = WicConfig(method="ric", stage="online", policy=policy, ensemble=tiny_ensemble_dir, train_data=[data],
                    online_data=[data], online_prompts=2, num_generations=2, max_new_tokens=4, offline_mix=2,
                    sft_steps_per_iteration=1, per_device_train_batch_size=4, max_length=128, output_dir=str(out))
    first = train_wic(cfg, scorer=_fake_scorer)["iterations"]
    samples_0 = (out / "online_samples_0.jsonl").read_text()

    resumed = train_wic(replace(cfg, iterations=2, resume=True), scorer=_fake_scorer)
    assert "resuming after online iteration 0" in capsys.readouterr().out
    assert [it["iteration"] for it in resumed["iterations"]] == [0, 1]
    assert resumed["iterations"][0] == first[0], "the finished iteration is kept, not redone"
    assert (out / "online_samples_0.jsonl").read_text() == samples_0 and (out / "online_samples_1.jsonl").is_file()
    assert len(json.loads((out / "wic_run.json").read_text())["online"]["iterations"]) == 2

    with pytest.raises(ConfigError, match=r"--resume: .*wic_run.json was written with other settings \(filter_quantile: 0.7 -> 0.5\)"):
        train_wic(replace(cfg, iterations=3, resume=True, filter_quantile=0.5), scorer=_fake_scorer)


def test_ric_round_filter_and_accumulation_on_a_hand_built_round(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    """RiC's online stage (YangRui2015/RiC merge_dataset): quantiles of the round's own generated scores, kept
    samples trained on again in every later round, the offline mix drawn only from offline samples that pass."""
    from preforch.alignment.wic_online import offline_pool, read_kept_samples, round_thresholds

    generated = torch.tensor([[0.0, 9.0], [1.0, 8.0], [2.0, 7.0], [3.0, 6.0], [100.0, 100.0]])
    usable = torch.tensor([True, True, True, True, False])  # an empty reply does not set the level
    assert round_thresholds(generated, usable, 0.5).tolist() == [1.5, 7.5]
    assert rejection_mask(generated[:4], round_thresholds(generated, usable, 0.5)).tolist() == [True, True, True, True]
    assert round_thresholds(generated, usable, 0.75).tolist() == [2.25, 8.25]
    assert rejection_mask(generated[:4], torch.tensor([2.25, 8.25])).tolist() == [True, False, False, True]
    offline = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
    assert offline_pool(offline, quantile_thresholds(offline, 0.7)) == [1, 2], "the offline mix passes the same filter"

    policy, _ = make_wic_policy(tiny_policy_dir, tmp_path, "ric")
    data = _write_pairs(tmp_path / "pairs.jsonl", make_pairs(8))
    out = tmp_path / "online"
    cfg = WicConfig(method="ric", stage="online", policy=policy, ensemble=tiny_ensemble_dir, train_data=[data],
                    online_data=[data], online_prompts=3, num_generations=2, max_new_tokens=5, offline_mix=1, iterations=2,
                    sft_steps_per_iteration=1, per_device_train_batch_size=4, max_length=128, output_dir=str(out))
    first, second = train_wic(cfg, scorer=_fake_scorer)["iterations"]
    kept = [len(read_kept_samples(out / f"online_samples_{t}.jsonl")[1]) for t in (0, 1)]
    assert kept == [first["kept"], second["kept"]] and min(kept) > 0
    assert first["online_trained"] == kept[0] and second["online_trained"] == kept[0] + kept[1], "kept samples accumulate"
    assert second["sft_samples"] == kept[0] + kept[1] + 1
    prompts, replies, values = read_kept_samples(out / "online_samples_0.jsonl")
    assert torch.allclose(values.values, _fake_scorer(prompts, replies).values), "relabelled with their own scores"


def test_ric_goal_weights_are_ric_sample_goals_through_its_target_map():
    from preforch.data.weights import ric_goal_weights

    w = ric_goal_weights(200, 3, seed=0)
    assert torch.allclose(w.sum(-1), torch.ones(200)) and bool((w >= 0).all())
    low, high = torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([1.0, 2.0, 3.0])
    targets = ric_targets(w, low, high)
    at_top = (targets == high).sum(-1)
    assert at_top.tolist() == [2] * 200, "every objective but one at the top of its range"
    below = targets[targets != high]
    assert bool(((below >= -3) & (below < 3)).all())
    assert len(set(w.argmin(-1).tolist())) == 3, "the objective below the top is drawn at random"
    assert torch.equal(w, ric_goal_weights(200, 3, seed=0))
