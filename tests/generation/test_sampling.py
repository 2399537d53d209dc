import torch

from preforch.generation.combined_reward import combined_reward, select_best
from preforch.generation.sampling import SamplingConfig, sample_candidates


def test_combined_reward_and_selection_follow_the_weights():
    # 1 prompt, 2 candidates, 2 objectives: candidate 0 is helpful, candidate 1 harmless.
    r = torch.tensor([[[2.0, -1.0], [-1.0, 2.0]]])
    assert combined_reward(r, torch.tensor([0.5, 0.5])).tolist() == [[0.5, 0.5]]
    assert select_best(r, torch.tensor([[0.9, 0.1]])).item() == 0
    assert select_best(r, torch.tensor([[0.1, 0.9]])).item() == 1


def test_sample_candidates_with_a_tiny_policy(tiny_policy_dir):
    from preforch.models import load_policy

    model, tok = load_policy(tiny_policy_dir, device="cpu")
    prompts = [({"role": "user", "content": "hello there"},), ({"role": "user", "content": "a longer question here"},)]
    out = sample_candidates(model, tok, prompts, SamplingConfig(num_candidates=3, max_new_tokens=5, batch_size=2), progress=False)
    assert len(out) == 2 and all(len(c) == 3 and all(isinstance(x, str) for x in c) for c in out)


def test_temperature_zero_decodes_greedily(tiny_policy_dir):
    from transformers import set_seed

    from preforch.models import load_policy

    model, tok = load_policy(tiny_policy_dir, device="cpu")
    prompts = [({"role": "user", "content": "hello there"},)]
    greedy = SamplingConfig(num_candidates=1, max_new_tokens=6, temperature=0.0, batch_size=1)
    runs = []
    for seed in (0, 1):
        set_seed(seed)
        runs.append(sample_candidates(model, tok, prompts, greedy, progress=False))
    assert runs[0] == runs[1]
    # the same answer as the argmax continuation computed by hand
    ids = tok.apply_chat_template(list(prompts[0]), add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    for _ in range(6):
        ids = torch.cat([ids, model(ids).logits[:, -1:].argmax(-1)], dim=1)
    n_prompt = ids.shape[1] - 6
    # generate stops at an end-of-sequence token; the hand loop does not
    assert tok.decode(ids[0, n_prompt:], skip_special_tokens=True).strip().startswith(runs[0][0][0])
