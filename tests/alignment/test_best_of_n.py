import torch

from preforch.alignment.best_of_n import SamplingConfig, best_of_n, combined_reward, sample_candidates, select_best


def test_combined_reward_and_selection_follow_the_weights():
    # 1 prompt, 2 candidates, 2 objectives: candidate 0 is helpful, candidate 1 harmless.
    r = torch.tensor([[[2.0, -1.0], [-1.0, 2.0]]])
    assert combined_reward(r, torch.tensor([0.5, 0.5])).tolist() == [[0.5, 0.5]]
    assert select_best(r, torch.tensor([[0.9, 0.1]])).item() == 0
    assert select_best(r, torch.tensor([[0.1, 0.9]])).item() == 1
    picked = best_of_n([["helpful answer", "safe answer"]], r, torch.tensor([[0.1, 0.9]]))
    assert picked[0]["response"] == "safe answer" and picked[0]["index"] == 1


def test_sample_candidates_with_a_tiny_policy(tiny_policy_dir):
    from preforch.models import load_policy

    model, tok = load_policy(tiny_policy_dir, device="cpu")
    prompts = [({"role": "user", "content": "hello there"},), ({"role": "user", "content": "a longer question here"},)]
    out = sample_candidates(model, tok, prompts, SamplingConfig(num_candidates=3, max_new_tokens=5, batch_size=2), progress=False)
    assert len(out) == 2 and all(len(c) == 3 and all(isinstance(x, str) for x in c) for c in out)
