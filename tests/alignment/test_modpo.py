import json
import math

import pytest
import torch

from preforch.alignment.mahalo_dpo import dpo_losses
from preforch.alignment.modpo import MARGIN, OWN_WEIGHT, modpo_losses, modpo_pairs
from preforch.alignment.ranked_dpo import PAIRS_FILE
from preforch.cli import main
from preforch.errors import ConfigError
from preforch.rewards.scores import Scores

NAMES = ("helpful", "harmless", "exact_match")


def test_modpo_loss_matches_a_hand_computation():
    losses, z = modpo_losses(torch.tensor([1.0, -0.5]), torch.tensor([0.2, 0.3]), torch.tensor([0.5, 0.25]),
                             torch.tensor([0.1, -0.2]), beta=0.1)
    # pair 1: (0.1 * (1.0 - 0.2) - 0.1) / 0.5 = -0.04; pair 2: (0.1 * (-0.8) + 0.2) / 0.25 = 0.48
    assert z.tolist() == pytest.approx([-0.04, 0.48])
    assert losses.tolist() == pytest.approx([math.log(1 + math.exp(0.04)), math.log(1 + math.exp(-0.48))])


def test_modpo_with_its_own_weight_1_and_no_margin_is_dpo():
    chosen, rejected, ref_c, ref_r = torch.randn(4, 6)
    dpo, _ = dpo_losses(chosen, rejected, ref_c, ref_r, beta=0.3)
    modpo, _ = modpo_losses(chosen - ref_c, rejected - ref_r, torch.ones(6), torch.zeros(6), beta=0.3)
    assert torch.allclose(modpo, dpo)


def test_modpo_pairs_label_by_one_objective_and_take_the_others_as_margin():
    # 2 prompts x 3 candidates x 3 objectives; exact match does not apply to the first prompt
    values = torch.tensor([[[0.0, 1.0, 9.0], [2.0, -1.0, 9.0], [1.0, 0.0, 9.0]],
                           [[0.5, 0.0, 1.0], [0.1, 2.0, 0.0], [0.3, 1.0, 1.0]]])
    applies = torch.ones_like(values, dtype=torch.bool)
    applies[0, :, 2] = False
    scores = Scores(values, applies)
    weights = torch.tensor([[0.25, 0.25, 0.5], [0.2, 0.3, 0.5]])
    ranking, k, own, margin = modpo_pairs(scores, weights, 0, NAMES)
    assert k.tolist() == [0, 0] and own.tolist() == pytest.approx([0.5, 0.2])  # 0.25 / (0.25 + 0.25) on prompt 1
    assert ranking.tolist() == [[0.0, 2.0, 1.0], pytest.approx([0.5, 0.1, 0.3])]
    # prompt 1: chosen 1, rejected 0 -> 0.5 * (-1 - 1); prompt 2: chosen 0, rejected 1 -> 0.3 * (0 - 2) + 0.5 * (1 - 0)
    assert margin.tolist() == pytest.approx([-1.0, -0.1])
    _, k, own, _ = modpo_pairs(scores, weights, None, NAMES)  # each prompt's largest weight
    assert k.tolist() == [0, 2] and own.tolist() == pytest.approx([0.5, 0.5])
    ranking, _, _, _ = modpo_pairs(scores, weights, 2, NAMES)  # exact match labels only where it applies
    assert math.isnan(ranking[0, 0]) and ranking[1].tolist() == [1.0, 0.0, 1.0]


def test_modpo_refuses_weight_0_on_the_pairs_own_objective():
    scores = Scores.dense(torch.randn(2, 3, 3))
    with pytest.raises(ConfigError, match="modpo: objective 'harmless' has weight 0 on 2 of 2 prompts"):
        modpo_pairs(scores, torch.tensor([[0.5, 0.0, 0.5]] * 2), 1, NAMES)


def _batch(tokenizer):
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    ids = lambda text: tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    examples = [{"prompt_ids": ids("question one"), "chosen_ids": ids("yes indeed"), "rejected_ids": ids("no"),
                 OWN_WEIGHT: 1.0, MARGIN: 0.0},
                {"prompt_ids": ids("another question"), "chosen_ids": ids("sure"), "rejected_ids": ids("never ok"),
                 OWN_WEIGHT: 1.0, MARGIN: 0.0}]
    return examples, DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)


def test_the_trainer_at_w_k_1_without_margin_gives_trls_dpo_loss(tiny_policy_dir, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from preforch.alignment.modpo import _modpo_trainer_class, with_pair_columns
    from preforch.alignment.trl_utils import device_args

    tokenizer = AutoTokenizer.from_pretrained(tiny_policy_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": "hi"}],
                               "chosen": [{"role": "assistant", "content": "a"}],
                               "rejected": [{"role": "assistant", "content": "b"}], OWN_WEIGHT: 1.0, MARGIN: 0.0}])
    args = DPOConfig(output_dir=str(tmp_path), beta=0.2, report_to="none", **device_args())
    dpo = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    modpo = _modpo_trainer_class()(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    with torch.no_grad():  # move the policy off its reference so the loss is not log 2 for both
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    examples, collator = _batch(tokenizer)
    model.float()  # compare the two losses in full precision
    reference = dpo.compute_loss(model, collator(examples))
    assert modpo.compute_loss(model, with_pair_columns(collator, (OWN_WEIGHT, MARGIN))(examples)).item() == \
        pytest.approx(reference.item(), rel=1e-5)
    for e in examples:  # a margin in the chosen reply's favour already explains the pair: the loss rises
        e[MARGIN] = 1.0
    assert modpo.compute_loss(model, with_pair_columns(collator, (OWN_WEIGHT, MARGIN))(examples)) > reference


def _args(policy, ensemble, data, out, *extra):
    return ["train-policy", "--algorithm", "modpo", "--policy", policy, "--ensemble", ensemble, "--train_data",
            str(data), "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--num_generations", "4", "--max_completion_length", "6", "--learning_rate", "1e-2", "--save_steps", "1",
            "--beta", "0.1", *extra]


def test_pro_modpo_trains_and_records_each_pairs_objective_weight_and_margin(
        tiny_policy_dir, tiny_ensemble_dir, tiny_orchestrator_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "a", "rejected": "b"}) for i in range(8)))
    out = tmp_path / "cmp" / "pro"
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, data, out, "--orchestrator", tiny_orchestrator_dir)) == 0
    before = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    after = AutoModelForCausalLM.from_pretrained(out / "policy")
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    logged = [json.loads(r) for r in (out / "log.jsonl").open()]
    assert any("modpo/margin" in r and "loss" in r for r in logged)
    rows = [json.loads(line) for line in (out / PAIRS_FILE).read_text().splitlines()]
    assert len(rows) == 8 and {"objective", OWN_WEIGHT, MARGIN} <= set(rows[0])
    assert all(0 < r[OWN_WEIGHT] <= 1 for r in rows)


def test_modpo_objective_the_ensemble_lacks_and_weight_0_each_stop_with_one_line(
        tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, data, tmp_path / "a", "--method", "morlhf",
                      "--modpo_objective", "honesty")) == 2
    assert "modpo_objective: 'honesty' is not an objective of the ensemble" in capsys.readouterr().err
    objectives = json.loads((__import__("pathlib").Path(tiny_ensemble_dir) / "ensemble.json").read_text())["objectives"]
    zero = ",".join(f"{o}={0.0 if i == 0 else 1.0 / (len(objectives) - 1)}" for i, o in enumerate(objectives))
    assert main(_args(tiny_policy_dir, tiny_ensemble_dir, data, tmp_path / "b", "--method", "morlhf",
                      "--weights", zero, "--modpo_objective", objectives[0])) == 2
    assert f"modpo: objective '{objectives[0]}' has weight 0 on 1 of 1 prompts" in capsys.readouterr().err
