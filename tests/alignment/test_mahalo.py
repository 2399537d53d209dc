import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from preforch.alignment.config import MahaloConfig
from preforch.alignment.mahalo import evaluate_heads, heldout_of_run, route, train_step, with_length_strata
from preforch.alignment.mahalo_dpo import balanced_batches, dpo_losses, encode_replies, epoch_steps, sequence_logprobs
from preforch.cli import main
from preforch.errors import ConfigError, DataError, WeightsError
from preforch.generation.multi_head import MultiHeadLM, mixed_logits
from tests.conftest import make_pairs, objective_pair_files, read_card

NAMES = ("helpful", "harmless", "arithmetic")
ROOT = Path(__file__).resolve().parents[2]


def _model(tiny_policy_dir, noise=0.0, adapter_rank=0, trained_adapters=False):
    """(MultiHeadLM, its base LM, tokenizer); `trained_adapters` fills the adapters' zero-initialised up matrices
    with noise, as training would, so each head's adapter is no longer the identity."""
    from preforch.models import load_policy

    lm, tok = load_policy(tiny_policy_dir, dtype=torch.float32, device="cpu")
    model = MultiHeadLM.from_base(lm, NAMES, noise_std=noise, adapter_rank=adapter_rank)
    if trained_adapters:
        with torch.no_grad():
            model.adapter_up.normal_(std=0.5, generator=torch.Generator().manual_seed(0))
    return model, lm, tok


def _ids(tok):
    return tok(["hello there how are you", "explain the topic"], return_tensors="pt", padding=True)


@pytest.mark.parametrize("adapter_rank", [0, 4])
def test_heads_with_zero_noise_reproduce_the_base_logits(tiny_policy_dir, adapter_rank):
    model, lm, tok = _model(tiny_policy_dir, adapter_rank=adapter_rank)
    enc = _ids(tok)
    base = lm(**enc).logits
    for k in range(len(NAMES)):
        w = torch.nn.functional.one_hot(torch.tensor([k, k]), len(NAMES)).float()
        assert torch.allclose(model(**enc, weights=w).logits, base, atol=1e-5)
    assert not torch.equal(MultiHeadLM.from_base(lm, NAMES, noise_std=1e-3).heads[0], model.heads[0])


@pytest.mark.parametrize("adapter_rank", [0, 4])
def test_mixing_is_the_normalised_product_of_the_heads_distributions(tiny_policy_dir, adapter_rank):
    model, _, tok = _model(tiny_policy_dir, noise=0.5, adapter_rank=adapter_rank, trained_adapters=bool(adapter_rank))
    enc = _ids(tok)
    w = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.0, 0.4]])
    mixed = model(**enc, weights=w).logits.log_softmax(-1)
    hidden, _ = model.hidden(**enc)
    per_head = torch.stack([model.head_logits(hidden, k).log_softmax(-1) for k in range(3)])  # [K, B, T, V]
    product = torch.einsum("kbtv,bk->btv", per_head, w).log_softmax(-1)  # log of prod_k p_k^w_k, normalised
    assert torch.allclose(mixed, product, atol=1e-4)
    if adapter_rank:  # the adapters take part: without them the heads give other distributions
        plain = torch.stack([(hidden @ model.heads[k].T).log_softmax(-1) for k in range(3)])
        assert not torch.allclose(per_head, plain, atol=1e-2)
        return
    same = w[:1].expand(2, 3)  # one merged head for a shared w gives what per-row mixing gives
    assert torch.allclose(mixed_logits(hidden, model.heads, same),
                          torch.einsum("kbtv,bk->btv", torch.stack([model.head_logits(hidden, k) for k in range(3)]), same),
                          atol=1e-4)


def test_weights_of_the_wrong_length_are_refused(tiny_policy_dir):
    model, _, tok = _model(tiny_policy_dir)
    with pytest.raises(WeightsError, match=r"\[B, 3\] over heads \['helpful', 'harmless', 'arithmetic'\]"):
        model(**_ids(tok), weights=torch.tensor([[0.5, 0.5], [0.5, 0.5]]))


@pytest.mark.parametrize("adapter_rank", [0, 4])
def test_save_and_load_round_trip_keeps_heads_and_logits(tiny_policy_dir, tmp_path, adapter_rank):
    from safetensors.torch import load_file

    model, _, tok = _model(tiny_policy_dir, noise=0.1, adapter_rank=adapter_rank, trained_adapters=bool(adapter_rank))
    model.save_pretrained(tmp_path / "m", tok, beta=0.1)
    assert load_file(tmp_path / "m" / "heads.safetensors")["heads"].shape == model.heads.shape
    loaded, tok2 = MultiHeadLM.from_pretrained(tmp_path / "m")
    assert loaded.objectives == NAMES and json.loads((tmp_path / "m" / "mahalo.json").read_text())["beta"] == 0.1
    w = torch.tensor([[0.1, 0.2, 0.7]] * 2)
    assert torch.allclose(loaded(**_ids(tok2), weights=w).logits, model(**_ids(tok), weights=w).logits, atol=1e-5)


def _reply_logps(model, tok, pairs, side: str, head: int | None = None):
    """Summed reply log-probs [N] of each pair's `side` reply under the base LM (head None) or one head, and the
    reply lengths [N]."""
    enc = encode_replies(tok, pairs.prompts, [getattr(p, side) for p in pairs], 32, 16)
    with torch.no_grad():
        if head is None:
            logits = model.lm(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        else:
            logits = model.head_logits(model.hidden(enc["input_ids"], enc["attention_mask"])[0], head)
    return sequence_logprobs(logits, enc["input_ids"], enc["reply_mask"]), enc["reply_mask"][:, 1:].sum(-1)


@pytest.mark.parametrize("adapter_rank", [0, 4])
def test_dpo_loss_is_log2_at_init_and_head_j_gets_no_gradient_from_objective_k(tiny_policy_dir, adapter_rank):
    model, _, tok = _model(tiny_policy_dir, adapter_rank=adapter_rank, trained_adapters=bool(adapter_rank))
    pairs = make_pairs(4)
    cfg = MahaloConfig(objectives=list(NAMES), max_prompt_tokens=32, max_reply_tokens=16)
    refs = [tuple(_reply_logps(model, tok, pairs, side, head=1)[0] for side in ("chosen", "rejected"))] * 3
    loss, log = train_step(model, tok, [(1, i) for i in range(4)], [pairs] * 3, refs, [0, 1, 2], cfg, NAMES)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-4) and set(log) == {"harmless/loss", "harmless/margin",
                                                                                 "harmless/accuracy"}
    loss.backward()
    for head_part in model.head_parameters():  # the output matrices, and the adapters if any
        grad = head_part.grad
        assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0


def test_the_sft_term_adds_the_chosen_nll_and_keeps_the_chosen_reply_likely(tiny_policy_dir):
    pairs, batch = make_pairs(4), [(1, i) for i in range(4)]
    chosen_after = {}
    for coefficient in (0.0, 1.0):
        model, _, tok = _model(tiny_policy_dir)
        cfg = MahaloConfig(objectives=list(NAMES), max_prompt_tokens=32, max_reply_tokens=16, sft_coefficient=coefficient)
        (chosen, tokens), (rejected, _) = (_reply_logps(model, tok, pairs, side) for side in ("chosen", "rejected"))
        refs = [(chosen, rejected)] * 3
        loss, _ = train_step(model, tok, batch, [pairs] * 3, refs, [0, 1, 2], cfg, NAMES)
        assert loss.item() == pytest.approx(math.log(2) + coefficient * (-chosen / tokens).mean().item(), abs=1e-4)
        optimizer = torch.optim.SGD([model.heads], lr=0.5)
        for _ in range(5):
            optimizer.zero_grad()
            train_step(model, tok, batch, [pairs] * 3, refs, [0, 1, 2], cfg, NAMES)[0].backward()
            optimizer.step()
        chosen_after[coefficient] = _reply_logps(model, tok, pairs, "chosen", head=1)[0].mean().item()
    assert chosen_after[1.0] > chosen_after[0.0] + 1.0
    only_arithmetic = MahaloConfig(objectives=list(NAMES), max_prompt_tokens=32, max_reply_tokens=16,
                                   sft_coefficient=1.0, sft_objectives=["arithmetic"])
    model, _, tok = _model(tiny_policy_dir)
    for k, expected in ((1, 0.0), (2, 1.0)):  # harmless pairs: DPO alone; arithmetic pairs: DPO + NLL
        loss, _ = train_step(model, tok, [(k, i) for i in range(4)], [pairs] * 3, refs, [0, 1, 2], only_arithmetic, NAMES)
        assert loss.item() == pytest.approx(math.log(2) + expected * (-chosen / tokens).mean().item(), abs=1e-4)
    with pytest.raises(ConfigError, match=r"sft_objectives: \['style'\] not among objectives"):
        MahaloConfig(objectives=list(NAMES), sft_objectives=["style"])


def test_dpo_losses_and_balanced_batches():
    losses, margins = dpo_losses(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), 0.5)
    assert margins.item() == pytest.approx(1.0) and losses.item() == pytest.approx(math.log(1 + math.exp(-1)))
    assert epoch_steps([10, 3, 5], batch_size=6, epochs=1) == 3
    batches = balanced_batches([10, 3, 5], batch_size=6, steps=3, seed=0)
    assert len(batches) == 3 and all([k for k, _ in b] == [0, 0, 1, 1, 2, 2] for b in batches)
    assert balanced_batches([10, 3, 5], 6, 3, 0) == batches
    assert {i for b in batches for k, i in b if k == 1} == {0, 1, 2}  # the short objective cycles
    longer = balanced_batches([10, 3, 5], 6, 5, 0)
    assert longer[:3] == batches  # a run extended by --max_steps replays its first steps, then goes on
    assert sorted(i for b in longer for k, i in b if k == 0) == list(range(10))  # the long objective: each pair once


def test_pairs_with_an_unknown_objective_are_refused():
    assert route(["harmless", "helpful"], NAMES) == [1, 0]
    with pytest.raises(DataError, match="pair 1: objective 'cooking' has no head"):
        route(["helpful", "cooking"], NAMES)


def _data(tmp_path):
    return objective_pair_files(tmp_path, 16)


def test_train_mahalo_trains_each_head_checkpoints_resumes_and_judges(tiny_policy_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    from preforch.serving.policies.folder import load_preference_policy

    data, out = _data(tmp_path), tmp_path / "run"
    args = ["train-mahalo", "--base_model", tiny_policy_dir, "--objectives", "helpful", "harmless", "--train_data",
            *data, "--eval_data", *data, "--output_dir", str(out), "--batch_size", "4", "--learning_rate", "1e-3",
            "--max_steps", "6", "--save_steps", "3", "--max_prompt_tokens", "24", "--max_reply_tokens", "24"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "head x objective" in printed and "length-balanced" in printed
    log = [json.loads(l) for l in (out / "training" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7)) and {"helpful/accuracy", "harmless/margin"} <= set(log[0])
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=0.01) and log[-1]["loss"] < log[0]["loss"]
    run = json.loads((out / "mahalo_run.json").read_text())
    assert set(run["heldout_accuracy"]) == {"helpful", "harmless"}
    cell = run["heldout_accuracy"]["helpful"]["helpful"]
    assert cell["accuracy"] >= 0.5 and cell["pairs_chosen_longer"] + cell["pairs_chosen_shorter"] <= len(cell["correct"])
    assert 0 <= cell["length_balanced_accuracy"] <= 1
    assert (out / "training" / "checkpoint" / "state.json").is_file()
    assert main([*args, "--max_steps", "9", "--resume", "true"]) == 0  # continues after step 3's checkpoint... 6
    steps = [json.loads(l)["step"] for l in (out / "training" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 10))
    _assert_card_describes_the_policy(out)
    policy = load_preference_policy(str(out / "policy"), "mahalo", objectives=["helpful", "harmless"])
    replies = policy.respond([({"role": "user", "content": "hi"},)], torch.tensor([[0.3, 0.7]]))
    assert len(replies) == 1 and isinstance(replies[0][0], str)
    _assert_same_matrix(evaluate_heads(out / "policy", data, None), out)  # reference: the starting model, reloaded
    with pytest.raises(ConfigError, match="eval_data: needs one entry per objective"):
        evaluate_heads(out / "policy", data[:1], None)
    # scripts/mahalo_eval.py --strata: the stored matrix plus its length strata, as the run recorded them
    strata = tmp_path / "strata.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "mahalo_eval.py"), "--policy", str(out / "policy"),
                    "--strata", str(out / "mahalo_run.json"), "--output", str(strata)], check=True, timeout=300)
    assert json.loads(strata.read_text())["heldout_accuracy"] == json.loads((out / "mahalo_run.json").read_text())[
        "heldout_accuracy"]
    cfg, heldout = heldout_of_run(out / "policy", None, 3)  # fewer pairs than the stored matrix judged
    with pytest.raises(DataError, match=r"head 'helpful' on 'helpful': \d+ pairs judged, 3 held-out pairs given"):
        with_length_strata(run["heldout_accuracy"], heldout, AutoTokenizer.from_pretrained(out / "policy"), cfg)


def _assert_card_describes_the_policy(run_dir) -> None:
    """The policy's model card: how it trained, the run's own held-out numbers, and plain-transformers code that
    gives the policy's own next-token logits under its mixed heads."""
    meta, held_out, card, code = read_card(run_dir / "policy")
    run = json.loads((run_dir / "mahalo_run.json").read_text())
    assert meta["pipeline_tag"] == "text-generation" and "mahalo" in meta["tags"]
    assert "9 steps of 4 pairs" in card and "--method mahalo" in card
    for head in ("helpful", "harmless"):
        cell = run["heldout_accuracy"][head][head]
        assert held_out[f"head {head} on {head} pairs: implicit-reward accuracy (held out)"] == pytest.approx(
            cell["accuracy"], abs=1e-4)
    snippet = {"FOLDER": str(run_dir / "policy")}
    exec(code, snippet)
    model, tok = MultiHeadLM.from_pretrained(run_dir / "policy", dtype=torch.float32)
    enc = tok(snippet["text"], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        ours = model(enc["input_ids"], enc["attention_mask"], weights=torch.tensor([[0.5, 0.5]])).logits[:, -1]
        reference = snippet["lm"](**enc).logits[:, -1]  # the trunk's own head: the starting model's
    assert torch.allclose(snippet["next_token_logits"], ours, atol=1e-4)
    assert not torch.allclose(reference, ours, atol=1e-4)


def _assert_same_matrix(evaluated: dict, run_dir) -> None:
    """evaluate_heads on the run's own held-out pairs reproduces the matrix train-mahalo recorded."""
    recorded = json.loads((run_dir / "mahalo_run.json").read_text())["heldout_accuracy"]
    assert set(evaluated["heldout_accuracy"]) == set(recorded)
    for head, row in recorded.items():
        for objective, cell in row.items():
            again = evaluated["heldout_accuracy"][head][objective]
            assert again["correct"] == cell["correct"] and again["margin"] == pytest.approx(cell["margin"], abs=1e-4)


@pytest.mark.parametrize("extra", [["--use_lora", "true", "--lora_r", "4", "--lora_alpha", "8"], ["--pool", "true"],
                                   ["--head_adapter_rank", "4"], ["--head_adapter_rank", "4", "--train_trunk", "false"]])
def test_train_mahalo_with_a_lora_trunk_one_pooled_head_or_head_adapters(extra, tiny_policy_dir, tmp_path):
    from safetensors.torch import load_file

    data, out = _data(tmp_path), tmp_path / "run"
    assert main(["train-mahalo", "--base_model", tiny_policy_dir, "--objectives", "helpful", "harmless", "--train_data",
                 *data, "--eval_data", *data, "--output_dir", str(out), "--batch_size", "4", "--learning_rate", "1e-2",
                 "--max_steps", "2", "--max_prompt_tokens", "16", "--max_reply_tokens", "16", *extra]) == 0
    heads = load_file(out / "policy" / "heads.safetensors")["heads"]
    model, _ = MultiHeadLM.from_pretrained(out / "policy")
    trunk = load_file(f"{tiny_policy_dir}/model.safetensors")
    saved = model.lm.state_dict()
    trunk_moved = any(not torch.equal(v, saved[k]) for k, v in trunk.items() if k in saved and "lm_head" not in k)
    assert trunk_moved == ("--train_trunk" not in extra)
    assert heads.shape[0] == (1 if "--pool" in extra else 2)
    saved_heads = load_file(out / "policy" / "heads.safetensors")
    if "--head_adapter_rank" in extra:  # the adapters trained (they start at zero) and were saved
        assert saved_heads["adapter_down"].shape == (2, 4, heads.shape[2]) and saved_heads["adapter_up"].abs().sum() > 0
        assert model.adapter_up is not None
    else:
        assert set(saved_heads) == {"heads"}
    assert json.loads((out / "mahalo_run.json").read_text())["heads"] == (["pooled"] if "--pool" in extra
                                                                          else ["helpful", "harmless"])
    _assert_same_matrix(evaluate_heads(out / "policy", data, None), out)  # frozen trunk: its own W_0, one pass


def test_arithmetic_pairs_come_from_own_samples_are_kept_and_read_back_on_resume(tiny_policy_dir, tmp_path, monkeypatch):
    from preforch.alignment.mahalo import load_data
    import preforch.alignment.verifiable_pairs as vp
    from preforch.data.arithmetic import make_problems
    from preforch.models import load_policy

    lm, tok = load_policy(tiny_policy_dir, dtype=torch.float32, device="cpu")
    cfg = MahaloConfig(objectives=["arithmetic"], train_data=["arithmetic"], eval_data=["arithmetic"],
                       max_train_pairs=2, max_eval_pairs=2, arithmetic_samples=2, arithmetic_max_new_tokens=3,
                       arithmetic_batch_size=5, output_dir=str(tmp_path / "run"))
    with pytest.raises(DataError, match="no pairs for objective 'arithmetic'"):  # a random model is never right
        load_data(cfg, lm, tok)
    calls = []

    def fake(model, tokenizer, num_problems, seed, samples, max_new_tokens, level, batch_size):
        assert batch_size == 5  # --arithmetic_batch_size reaches the sampler
        calls.append(seed)
        problems = make_problems(num_problems, seed, level)
        return vp.pairs_from_samples(problems, [[f"Answer: {p.answer}", "Answer: -1"] for p in problems]), {"seed": seed}

    monkeypatch.setattr(vp, "arithmetic_pairs", fake)
    train, heldout, record = load_data(cfg, lm, tok)
    assert len(train["arithmetic"]) == 2 and calls == [0, 10_000] and set(record) == {"arithmetic/train", "arithmetic/eval"}
    assert train["arithmetic"][0].prompt != heldout["arithmetic"][0].prompt  # other seeds: other problems
    again, _, _ = load_data(MahaloConfig(**{**cfg.__dict__, "resume": True}), lm, tok)
    assert calls == [0, 10_000] and [p.chosen for p in again["arithmetic"]] == [p.chosen for p in train["arithmetic"]]


def test_heads_can_learn_at_their_own_rate(tiny_policy_dir):
    from preforch.alignment.mahalo import param_groups

    model, _, _ = _model(tiny_policy_dir)
    trunk, heads = param_groups(model, MahaloConfig(learning_rate=1e-5, head_learning_rate=1e-3))
    assert heads == {"params": [model.heads], "lr": 1e-3} and trunk["lr"] == 1e-5
    assert all(p is not model.heads for p in trunk["params"]) and len(trunk["params"]) > 0
    assert param_groups(model, MahaloConfig(learning_rate=2e-5))[1]["lr"] == 2e-5  # default: MAHALO's one rate


def test_adapters_that_do_not_fit_the_heads_are_refused(tiny_policy_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    from preforch.errors import ConfigError

    model, _, tok = _model(tiny_policy_dir, adapter_rank=4)
    model.save_pretrained(tmp_path / "m", tok)
    tensors = load_file(tmp_path / "m" / "heads.safetensors")
    save_file({**tensors, "adapter_up": tensors["adapter_up"][:, :, :2].contiguous()}, str(tmp_path / "m" / "heads.safetensors"))
    with pytest.raises(ConfigError, match=r"heads.safetensors: adapters of shapes .* \(expected \[K, r, H\] and \[K, H, r\]\)"):
        MultiHeadLM.from_pretrained(tmp_path / "m")


def test_a_lora_trunk_cannot_also_be_frozen():
    from preforch.errors import ConfigError

    with pytest.raises(ConfigError, match="use_lora adapts the trunk, train_trunk false freezes it"):
        MahaloConfig(use_lora=True, train_trunk=False)
