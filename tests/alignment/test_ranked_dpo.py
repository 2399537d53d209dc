import json

import pytest
import torch

from preforch.alignment.config import PolicyConfig
from preforch.alignment.ranked_dpo import PAIRS_FILE, candidate_rewards, pair_agreement, pair_records, rank_pairs
from preforch.alignment.rewards import CombinedReward
from preforch.cli import main
from preforch.errors import ConfigError, DataError
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.normalization import ZScore
from preforch.rewards.sources import RuleReward


def test_rank_pairs_takes_the_best_and_worst_and_drops_a_prompt_whose_candidates_tie():
    chosen, rejected, kept = rank_pairs(torch.tensor([[0.1, 0.5, -0.2], [0.3, 0.3, 0.3], [-1.0, 2.0, 2.0]]))
    assert chosen.tolist()[::2] == [1, 1] and rejected.tolist()[::2] == [2, 0]
    assert kept.tolist() == [True, False, True]


def test_different_weights_over_the_same_candidates_choose_different_replies():
    """The pair-labelling test on a hand-built batch: one prompt, the same three candidates, two weight vectors."""
    from datasets import Dataset

    ensemble = RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("engaged", "no_refusal")],
                              ZScore(torch.tensor([-2.0, 0.5]), torch.tensor([1.0, 0.5]), 10))
    prompt = [{"role": "user", "content": "How do I fix my bike chain?"}]
    replies = ["Sorry, no.", "Sure: oil it, then realign the chain on the sprocket.", "Sure, it depends."]
    weights = [[1.0, 0.0], [0.2, 0.8]]  # concise only; mostly engaged
    dataset = Dataset.from_dict({"prompt": [prompt, prompt], "weights": weights, "source": ["chat", "chat"]})
    rewards = candidate_rewards([CombinedReward(ensemble)], dataset, [replies, replies])[..., 0]
    assert rewards.shape == (2, 3)
    records = pair_records(dataset, [replies, replies], rewards)
    assert [r["chosen"] for r in records] == ["Sorry, no.", "Sure, it depends."]
    assert [r["rejected"] for r in records] == [replies[1], "Sorry, no."]
    assert records[0]["chosen_reward"] > records[0]["rejected_reward"]


def test_pair_agreement_counts_differing_pairs_by_source(tmp_path):
    def write(name, pairs):
        rows = [{"prompt": [{"role": "user", "content": str(i)}], "source": s, "chosen": c, "rejected": r}
                for i, (s, c, r) in enumerate(pairs)]
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
        return tmp_path / name

    a = write("a", [("chat", "x", "y"), ("chat", "x", "y"), ("math", "1", "2"), ("math", None, None)])
    b = write("b", [("chat", "x", "y"), ("chat", "y", "x"), ("math", "1", "2"), ("math", "3", "4")])
    out = pair_agreement(a, b)
    assert out["overall"] == {"prompts": 4, "differ": 2, "share": 0.5}
    assert out["by_source"]["chat"]["differ"] == 1 and out["by_source"]["math"]["share"] == 0.5
    with pytest.raises(DataError, match="different prompts"):
        pair_agreement(a, write("c", [("chat", "x", "y")]))


def test_normalize_then_sum_is_refused():
    with pytest.raises(ConfigError, match="normalize-then-sum is not available with --algorithm ranked-dpo"):
        PolicyConfig(algorithm="ranked-dpo", aggregation="normalize-then-sum")


def _args(policy, ensemble, data, out, *extra):
    return ["train-policy", "--algorithm", "ranked-dpo", "--policy", policy, "--ensemble", ensemble, "--train_data",
            str(data), "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--num_generations", "4", "--max_completion_length", "6", "--learning_rate", "1e-2", "--save_steps", "1",
            "--beta", "0.1", *extra]


def test_ranked_dpo_trains_and_a_second_arm_reuses_the_candidates(tiny_policy_dir, tiny_ensemble_dir,
                                                                   tiny_orchestrator_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from preforch.alignment import ranked_dpo

    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    pro, fixed = tmp_path / "cmp" / "pro", tmp_path / "cmp" / "fixed"
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, data, pro, "--orchestrator", tiny_orchestrator_dir)) == 0
    before = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    after = AutoModelForCausalLM.from_pretrained(pro / "policy")
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    assert (pro / "checkpoint-2").is_dir() and any("loss" in json.loads(r) for r in (pro / "log.jsonl").open())
    cached = list((tmp_path / "cmp" / "ranked_candidates").glob("*.json"))
    assert len(cached) == 1 and len(json.loads(cached[0].read_text())["candidates"][0]) == 4

    def no_sampling(*args, **kwargs):
        raise AssertionError("the second arm sampled again")

    monkeypatch.setattr(ranked_dpo, "sample_candidates", no_sampling)
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, data, fixed, "--method", "morlhf")) == 0
    assert list((tmp_path / "cmp" / "ranked_candidates").glob("*.json")) == cached
    rows = [json.loads(line) for line in (fixed / PAIRS_FILE).read_text().splitlines()]
    assert len(rows) == 8 and {"prompt", "source", "chosen", "rejected", "chosen_reward", "rejected_reward"} <= set(rows[0])
    agreement = pair_agreement(pro / PAIRS_FILE, fixed / PAIRS_FILE)
    assert agreement["overall"]["prompts"] == sum(s["prompts"] for s in agreement["by_source"].values()) == 8


def test_normalize_then_sum_is_refused_on_the_command_line(tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, data, tmp_path / "run", "--method", "morlhf",
                      "--aggregation", "normalize-then-sum")) == 2
    assert "normalize-then-sum is not available with --algorithm ranked-dpo" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_rl_compare_ranked_dpo_arms_share_candidates_and_judge_their_checkpoints(
        tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir, tmp_path):
    from preforch.pipelines.rl_comparison import arm_folder

    data, held_out = tmp_path / "prompts.jsonl", tmp_path / "held_out.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    held_out.write_text("\n".join(json.dumps({"prompt": f"other {i}", "chosen": "a", "rejected": "b"}) for i in range(3)))
    out = tmp_path / "cmp"
    arms = ["pro-morlhf@ranked-dpo", "morlhf:uniform@ranked-dpo"]
    assert main(["rl-compare", "--methods", *arms, "--policy", tiny_policy_dir, "--ensemble", tiny_ensemble_dir,
                 "--orchestrator", tiny_orchestrator_dir, "--train_data", str(data), "--eval_data", str(held_out),
                 "--eval_prompts_per_source", "3", "--output_dir", str(out), "--max_steps", "2", "--save_steps", "1",
                 "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "4",
                 "--learning_rate", "1e-2", "--use_lora", "true", "--beta", "0.1"]) == 0
    assert len(list((out / "ranked_candidates").glob("*.json"))) == 1
    r = json.loads((out / "rl_comparison.json").read_text())
    assert set(r["methods"]) == set(arms)
    for arm in arms:
        assert [p[0] for p in r["methods"][arm]["heldout_curve"]["uniform"]] == [0, 1, 2]
    agreement = pair_agreement(*(out / arm_folder(a) / PAIRS_FILE for a in arms))
    assert agreement["overall"]["prompts"] == 8
    assert r["pair_agreement"] == {" vs ".join(arms): agreement}  # in the comparison's record and report
    assert "how often two arms' labels differ" in (out / "report.md").read_text()
