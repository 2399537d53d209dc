from pathlib import Path

import pytest
import torch

from preforch.errors import ConfigError, ObjectiveMismatchError, PreforchError
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.sources import HFRewardModel, RuleReward


def test_multi_head_model_scores_all_objectives_in_one_forward(tiny_rm_dir, pairs):
    rm = HFRewardModel(tiny_rm_dir, device="cpu")
    assert rm.objectives == ("helpful", "harmless")
    calls = []
    rm.model.register_forward_hook(lambda *a: calls.append(1))
    scores = rm.score(pairs.prompts[:5], [p.chosen for p in pairs][:5])
    assert scores.shape == (5, 2) and len(calls) == 1 and torch.isfinite(scores).all()


def test_any_hf_sequence_classifier_is_a_reward_source(tiny_encoder_dir, tmp_path, pairs):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    cfg = BertConfig.from_pretrained(tiny_encoder_dir, num_labels=1, id2label={0: "helpful"})
    BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_encoder_dir).save_pretrained(tmp_path)
    rm = HFRewardModel(str(tmp_path), device="cpu")
    assert rm.objectives == ("helpful",)
    assert rm.score(pairs.prompts[:3], ["a", "b", "c"]).shape == (3, 1)
    with pytest.raises(ConfigError, match="1 head"):
        HFRewardModel(str(tmp_path), objectives=["a", "b"], device="cpu")


def test_ensemble_shape_normalisation_and_cache(tiny_rm_dir, pairs):
    rule = RuleReward("conciseness", "conciseness")
    ens = RewardEnsemble([HFRewardModel(tiny_rm_dir, device="cpu"), rule])
    assert ens.objectives == ("helpful", "harmless", "conciseness")
    stats = ens.fit_normalization(pairs, progress=False)
    assert stats.num_samples == 2 * len(pairs)
    normalized = ens.score(pairs.prompts * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    assert normalized.shape == (2 * len(pairs), 3)
    assert normalized.applies.all() and normalized.values.mean(0).abs().max() < 1e-4  # reference set is exactly what the stats were fitted on
    calls = []
    rule.fn = lambda prompts, completions, **kwargs: calls.append(len(completions)) or [0.0] * len(completions)
    ens.score(pairs.prompts[:3], [p.chosen for p in pairs][:3])  # cached: no call
    ens.score([pairs.prompts[0]], ["a new reply"])
    assert calls == [1]


def test_ensemble_save_load_round_trip(tiny_ensemble_dir, pairs):
    ens = RewardEnsemble.load(tiny_ensemble_dir)
    assert ens.objectives == ("helpful", "harmless", "conciseness")
    again = RewardEnsemble.load(tiny_ensemble_dir)
    a = ens.score(pairs.prompts[:4], [p.chosen for p in pairs][:4])
    assert torch.allclose(a.values, again.score(pairs.prompts[:4], [p.chosen for p in pairs][:4]).values)


def test_a_reward_model_beside_the_ensemble_loads_from_any_working_directory(tiny_rm_dir, tmp_path, pairs,
                                                                             monkeypatch):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_rm_dir, run / "reward_model")
    monkeypatch.chdir(run)  # built the usual way: paths as a user typed them, relative to where they stand
    ens = RewardEnsemble([HFRewardModel("reward_model", device="cpu")])
    ens.fit_normalization(pairs, progress=False)
    ens.save(run / "rewards")
    assert json.loads((run / "rewards" / "ensemble.json").read_text())["sources"][0]["path"] == "../reward_model"
    shutil.move(run, tmp_path / "moved")  # the run folder moved as a whole, read from elsewhere
    monkeypatch.chdir(tmp_path)
    loaded = RewardEnsemble.load(tmp_path / "moved" / "rewards")
    assert torch.allclose(loaded.score(*pairs.all_replies()).values, ens.score(*pairs.all_replies()).values)


def test_ensemble_errors(tmp_path):
    with pytest.raises(ConfigError, match="more than one reward source"):
        RewardEnsemble([RuleReward("c", "conciseness"), RuleReward("c", "no_refusal")])
    from preforch.rewards.normalization import ZScore

    with pytest.raises(ObjectiveMismatchError, match="normalisation has 2"):
        RewardEnsemble([RuleReward("c", "conciseness")], ZScore(torch.zeros(2), torch.ones(2), 2))
    with pytest.raises(ConfigError, match="no reward ensemble here"):
        RewardEnsemble.load(tmp_path)
    (tmp_path / "ensemble.json").write_text("{not json")
    with pytest.raises(ConfigError, match="ensemble.json:1: malformed JSON"):
        RewardEnsemble.load(tmp_path)


def test_trained_model_carries_its_input_format(tiny_encoder_dir, tmp_path):
    from preforch.rewards.multihead import MultiHeadRewardModel

    MultiHeadRewardModel.from_encoder(tiny_encoder_dir, ["a"], max_length=48, prompt_max_tokens=16).save_pretrained(tmp_path / "rm")
    rm = HFRewardModel(str(tmp_path / "rm"), device="cpu")
    assert (rm.max_length, rm.prompt_max_tokens) == (48, 16)


def test_missing_model_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match=r"reward model '.*nowhere': no such folder"):
        HFRewardModel(str(tmp_path / "nowhere"), device="cpu")


def test_length_buckets_pad_inputs_without_changing_scores(tiny_rm_dir, pairs, monkeypatch):
    # CPU bf16 rounds lengths up to a bucket (bounded oneDNN kernel memory); the padding is masked out
    import preforch.rewards.formatting as formatting

    rm = HFRewardModel(tiny_rm_dir, device="cpu")
    replies = [p.chosen for p in pairs][:6]
    plain = rm.score(pairs.prompts[:6], replies)
    lengths = []
    rm.model.register_forward_pre_hook(lambda m, args, kw: lengths.append(kw["input_ids"].shape[1]), with_kwargs=True)
    monkeypatch.setattr(formatting, "length_bucket", lambda: 16)
    bucketed = rm.score(pairs.prompts[:6], replies)
    assert lengths and all(n % 16 == 0 for n in lengths)
    torch.testing.assert_close(bucketed, plain, atol=1e-5, rtol=1e-5)


def test_build_ensemble_fits_exact_match_on_problems_only(tmp_path, capsys):
    # issue 37's command: no --objective_reference, yet arithmetic's mean is the share right on the 100 problems
    # (each pair one right and one wrong sample: 0.5), not diluted by 200 chat replies it does not apply to (0.25)
    import json

    from preforch.cli import main

    out = tmp_path / "rewards"
    main(["build-ensemble", "--reward_models", "--rules", "arithmetic=preforch.data.arithmetic:exact_match",
          "conciseness", "--reference_data", "hh-helpful:test", "arithmetic-smollm2:train",
          "--max_reference_pairs", "100", "--output_dir", str(out)])
    norm = json.loads((out / "ensemble.json").read_text())["normalization"]
    assert norm["mean"][0] == pytest.approx(0.5) and norm["counts"] == [200, 400]
    ens = RewardEnsemble.load(out)
    chat = [({"role": "user", "content": "Any tips for sleeping better?"},)] * 2
    problem = [({"role": "user", "content": "What is 2 + 3? Give the final number on a last line as 'Answer: N'."},)] * 2
    s = ens.score(chat + problem, ["Keep a routine.", "Dark room.", "Answer: 5", "Answer: 6"])
    assert s.applies[:, 0].tolist() == [False, False, True, True] and s.applies[:, 1].all()
    assert s.values[2:, 0].tolist() == pytest.approx([1.0, -1.0], abs=1e-2)
    assert s.tolist()[0][0] is None


def test_only_a_rule_may_say_not_applicable(tiny_rm_dir, pairs):
    rm = HFRewardModel(tiny_rm_dir, device="cpu")
    rm.outputs = lambda prompts, responses: torch.full((len(responses), 2), float("nan"))  # a broken model
    with pytest.raises(PreforchError, match=r"reward source \['helpful', 'harmless'\] \(hf\) scored NaN for reply 0"):
        RewardEnsemble([rm]).score_raw(pairs.prompts[:2], ["a", "b"])


def test_dataset_columns_reach_the_rules():
    ens = RewardEnsemble([RuleReward.from_spec("arithmetic=preforch.data.arithmetic:exact_match")])
    prompts = [({"role": "user", "content": "How many legs do 3 spiders have?"},)] * 2
    assert not ens.score_raw(prompts, ["Answer: 24", "Answer: 23"]).applies.any()
    scored = ens.score_raw(prompts, ["Answer: 24", "Answer: 23"], columns={"solution": ["24", "24"]})
    assert scored.values.flatten().tolist() == [1.0, 0.0]
    # the column is part of what was scored: another answer is another cache entry
    assert ens.score_raw(prompts, ["Answer: 24"] * 2, columns={"solution": [24, 23]}).values.flatten().tolist() == [1.0, 0.0]


@pytest.mark.parametrize("change, message", [({"std": [1.0, 0.0]}, r"std\[1\] is 0.0"),
                                             ({"mean": [float("nan"), 0.0]}, r"mean\[0\] is nan")])
def test_normalisation_statistics_that_would_give_inf_or_nan_are_refused_on_load(tiny_ensemble_dir, tmp_path, change,
                                                                                  message):
    import json
    import shutil

    from preforch.rewards.ensemble import RewardEnsemble

    folder = Path(tiny_ensemble_dir).parent / f"bad_{tmp_path.name}"  # a sibling: its reward-model paths are relative
    shutil.copytree(tiny_ensemble_dir, folder)
    file = folder / "ensemble.json"
    cfg = json.loads(file.read_text())
    k = len(cfg["normalization"]["mean"])
    cfg["normalization"].update({key: (value + [0.0] * k)[:k] for key, value in change.items()})
    file.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=rf"ensemble.json: normalization: {message}"):
        RewardEnsemble.load(folder)
