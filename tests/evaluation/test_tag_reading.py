import pytest
import torch

from preforch.evaluation.tag_reading import mismatched, reply_nll, tag_reading
from preforch.rewards.scores import Scores


def test_mismatched_never_gives_a_reply_its_own_conditioning():
    values = Scores(torch.arange(10.0).view(5, 2), torch.tensor([[True, False]] + [[True, True]] * 4))
    other = mismatched(values)
    assert sorted(other.values[:, 0].tolist()) == values.values[:, 0].tolist()
    assert not (other.filled(-1.0) == values.filled(-1.0)).all(-1).any()
    # the objectives a tag names move with its values: reply 0's tag (helpful only) now conditions reply 2
    assert other.applies[2].tolist() == [True, False] and other.values[2, 0] == 0.0


def test_reply_nll_is_the_mean_token_cross_entropy_of_the_templated_reply_with_its_end(tiny_policy_dir):
    from preforch.models import load_policy

    model, tok = load_policy(tiny_policy_dir, device="cpu")
    prompt, reply = ({"role": "user", "content": "hello there"},), "a short reply"
    p = tok(tok.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True),
            add_special_tokens=False, return_tensors="pt").input_ids
    full = tok(tok.apply_chat_template([*prompt, {"role": "assistant", "content": reply}], tokenize=False),
               add_special_tokens=False, return_tensors="pt").input_ids
    reply_ids = full[0, p.shape[1]:]
    assert len(reply_ids) > len(tok(reply, add_special_tokens=False).input_ids)  # the end marker is scored too
    logp = torch.log_softmax(model(full).logits[0].float(), -1)
    by_hand = -torch.stack([logp[p.shape[1] - 1 + i, t] for i, t in enumerate(reply_ids)]).mean()
    assert reply_nll(model, tok, [prompt], [reply])[0].item() == pytest.approx(by_hand.item(), rel=1e-4)
    cut = -torch.stack([logp[p.shape[1] - 1 + i, t] for i, t in enumerate(reply_ids[:2])]).mean()
    assert reply_nll(model, tok, [prompt], [reply], max_reply_tokens=2)[0].item() == pytest.approx(cut.item(), rel=1e-4)


def test_no_gap_when_every_reply_carries_the_same_conditioning(tiny_policy_dir, tmp_path):
    from preforch.generation.wic_spec import load_wic_spec
    from preforch.models import load_policy
    from tests.conftest import make_wic_policy

    policy, _ = make_wic_policy(tiny_policy_dir, tmp_path, "pro-wic")
    model, tok = load_policy(policy, device="cpu")
    prompts = [({"role": "user", "content": f"question {i}"},) for i in range(4)]
    replies = ["yes", "no", "maybe so", "it depends"]
    same = tag_reading(model, tok, load_wic_spec(policy), prompts, replies, torch.zeros(4, 3))
    assert same["replies"] == 4 and same["gap"] == pytest.approx(0.0, abs=1e-6)
    varied = tag_reading(model, tok, load_wic_spec(policy), prompts, replies, torch.eye(4, 3) * 3)
    assert varied["nll_own_tag"] != varied["nll_mismatched_tag"]  # the tag is part of what the model conditions on
