import json

import pytest

from preforch.cli import main
from preforch.errors import ConfigError
from preforch.evaluation.replies import read_replies
from preforch.pipelines.config import HeadlineConfig
from tests.pipelines.test_rl_comparison import mixed_stack  # noqa: F401  (a fixture)

ARMS = ["pro-morlhf@ranked-dpo", "morlhf:best-fixed@ranked-dpo"]


def test_config_needs_two_seeds_a_judge_and_the_primary_pair():
    with pytest.raises(ConfigError, match=r"seeds: expected at least two distinct training seeds .* got \[0\]"):
        HeadlineConfig(seeds=[0], judge="j")
    with pytest.raises(ConfigError, match="judge: the headline test needs an independent judge"):
        HeadlineConfig()
    HeadlineConfig(seeds=[1], methods=ARMS[1:], train_only=True)  # a training call of one arm and seed
    with pytest.raises(ConfigError, match="methods: the grpo/normalize-then-sum arms lack morlhf:best-fixed"):
        HeadlineConfig(judge="j", methods=[*ARMS, "pro-morlhf@grpo/normalize-then-sum"])
    assert HeadlineConfig(judge="j", methods=[*ARMS, "pro-morlhf:temperature=0.2@ranked-dpo"]).arms_by_signal() == {
        "ranked-dpo": {"pro-morlhf": ARMS[0], "morlhf:best-fixed": ARMS[1],
                       "pro-morlhf:temperature=0.2": "pro-morlhf:temperature=0.2@ranked-dpo"}}


def test_a_lower_weight_temperature_sharpens_pro_morlhf(mixed_stack):  # noqa: F811
    from preforch.alignment.morlhf import method_weights
    from preforch.orchestrator.metrics import weight_entropy
    from preforch.pipelines.rl_comparison import policy_config
    from preforch.rewards.ensemble import RewardEnsemble

    train, _, rewards, orchestrator = mixed_stack
    # 0.02 is below every temperature calibration can fit (TEMPERATURE_GRID), so sharper than any calibrated one
    cfg = HeadlineConfig(judge=rewards, ensemble=rewards, orchestrator=orchestrator,
                         methods=[*ARMS, "pro-morlhf:temperature=0.02@ranked-dpo"])
    prompts = [[{"role": "user", "content": f"explain topic {i}"}] for i in range(4)]
    ensemble = RewardEnsemble.load(rewards)
    calibrated, sharp = (method_weights(policy_config(cfg, arm), ensemble, prompts) for arm in (ARMS[0], cfg.methods[2]))
    entropy = [weight_entropy(w.numpy(), ["x"] * 4)["x"]["mean"] for w in (calibrated, sharp)]
    assert entropy[1] < entropy[0]
    assert (sharp.argmax(-1) == calibrated.argmax(-1)).all()  # the same ranking, sharper
    with pytest.raises(ConfigError, match="expected pro-morlhf:temperature=<T>"):
        policy_config(cfg, "pro-morlhf:temp=x@ranked-dpo")


def test_headline_trains_every_arm_per_seed_and_pools_them(tiny_policy_dir, mixed_stack, tmp_path, capsys):  # noqa: F811
    train, test, rewards, orchestrator = mixed_stack
    out = tmp_path / "headline"
    common = ["--policy", tiny_policy_dir, "--ensemble", rewards, "--orchestrator", orchestrator, "--judge", rewards,
              "--train_data", train, "--eval_data", test, "--eval_prompts_per_source", "3", "--eval_temperature", "0",
              "--max_steps", "1", "--save_steps", "5", "--per_device_train_batch_size", "2", "--num_generations", "2",
              "--max_completion_length", "4", "--use_lora", "true"]
    args = ["headline", *common, "--methods", *ARMS, "--seeds", "0", "1", "--eval_seed", "7", "--weight_data",
            "arithmetic-fresh:trained:4", "arithmetic-fresh:fresh:4", "--output_dir", str(out)]
    # one arm and seed trained alone (as parallel calls on a GPU do), found by the full run
    assert main(["headline", *common, "--methods", ARMS[1], "--seeds", "1", "--output_dir", str(out), "--train_only",
                 "true"]) == 0
    assert (out / "seed1" / "morlhf-best-fixed-ranked-dpo" / "policy").is_dir() and not (out / "eval").exists()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "morlhf:best-fixed@ranked-dpo, seed 1: trained policy found" in printed
    assert "ranked-dpo: pro-morlhf@ranked-dpo minus morlhf:best-fixed@ranked-dpo" in printed
    for seed in (0, 1):  # each seed sampled its own candidates, shared by its arms
        assert len(list((out / f"seed{seed}" / "ranked_candidates").glob("*.json"))) == 1
    r = json.loads((out / "headline.json").read_text())
    primary = r["signals"]["ranked-dpo"]["primary"]
    assert set(primary["per_seed"]) == {"0", "1"} and primary["pooled"]["overall"]["n"] == 9
    assert set(primary["pooled"]) == {"hh-helpful", "hh-harmless", "arithmetic", "overall"}
    assert isinstance(primary["bold"], bool) and "ci95" in primary["noise_floor"]
    assert set(r["signals"]["ranked-dpo"]["mcnemar"]["0"]) == {"arithmetic"}
    assert r["own_objective"] == {"hh-helpful": "helpful", "hh-harmless": "harmless", "arithmetic": "arithmetic"}
    pro = r["arms"][ARMS[0]]
    assert set(pro["weight_data"]) == {"arithmetic-fresh:trained:4", "arithmetic-fresh:fresh:4"}
    assert pro["weights"]["entropy"]["arithmetic"]["mean"] >= 0
    assert r["arms"][ARMS[1]]["cost"]["1"]["steps"] == 1

    # every evaluated reply kept, judged, re-judgeable: initial once, each arm once per seed, the same prompts
    replies = read_replies(out / "replies.jsonl.gz")
    assert len(replies) == 9 * 5 and {(x["arm"], x["seed"]) for x in replies} == {
        ("initial", None), *((a, s) for a in ARMS for s in (0, 1))}
    assert len({json.dumps(x["prompt"]) for x in replies}) == 9
    assert all(x["scores"]["arithmetic"] is None for x in replies if x["source"] != "arithmetic")
    report = (out / "report.md").read_text()
    assert "## Primary metric: Pro minus best fixed" in report and "| ranked-dpo |" in report
    assert (out / "headline.png").stat().st_size > 0
    assert main(["rejudge", "--replies", str(out / "replies.jsonl.gz"), "--judge", rewards,
                 "--output_dir", str(tmp_path / "rejudged")]) == 0
