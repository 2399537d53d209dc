import pytest
import torch

from preforch.evaluation.tag_reading import mismatched, reply_nll, tag_reading


def test_mismatched_never_gives_a_reply_its_own_conditioning():
    values = torch.arange(10.0).view(5, 2)
    other = mismatched(values)
    assert sorted(other[:, 0].tolist()) == values[:, 0].tolist()
    assert not (other == values).all(-1).any()


def test_reply_nll_is_the_mean_token_cross_entropy_of_the_reply(tiny_policy_dir):
    from preforch.models import load_policy

    model, tok = load_policy(tiny_policy_dir, device="cpu")
    prompt, reply = ({"role": "user", "content": "hello there"},), "a short reply"
    p = tok(tok.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True),
            add_special_tokens=False, return_tensors="pt").input_ids
    r = tok(reply, add_special_tokens=False, return_tensors="pt").input_ids
    logp = torch.log_softmax(model(torch.cat([p, r], 1)).logits[0].float(), -1)
    by_hand = -torch.stack([logp[p.shape[1] - 1 + i, t] for i, t in enumerate(r[0])]).mean()
    assert reply_nll(model, tok, [prompt], [reply])[0].item() == pytest.approx(by_hand.item(), rel=1e-4)


def test_no_gap_when_every_reply_carries_the_same_conditioning(tiny_policy_dir, tmp_path):
    from preforch.alignment.wic import load_wic_spec
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
