import pytest
import torch

from preforch.errors import ConfigError, WeightsError
from preforch.evaluation.harness import run_evaluation
from preforch.generation.multi_head import MultiHeadLM
from preforch.generation.sampling import SamplingConfig, sample_candidates
from preforch.serving.policies.folder import load_preference_policy
from tests.conftest import eval_config, make_mahalo_dir

PROMPTS = [({"role": "user", "content": "hi"},), ({"role": "user", "content": "tell me a story about a cat"},)]
GREEDY = SamplingConfig(num_candidates=1, max_new_tokens=6, temperature=0.0)
OBJECTIVES = ("helpful", "harmless", "conciseness")


@pytest.fixture(scope="module")
def mahalo_dir(tiny_policy_dir, tmp_path_factory) -> str:
    """A MAHALO folder on the tiny policy whose heads differ."""
    return make_mahalo_dir(tiny_policy_dir, tmp_path_factory.mktemp("mahalo"), OBJECTIVES)


def test_a_corner_of_the_simplex_decodes_as_that_head_alone(mahalo_dir):
    policy = load_preference_policy(mahalo_dir)  # inferred from mahalo.json
    assert policy.kind == "mahalo" and policy.objectives == OBJECTIVES
    model, tok = policy.model_and_tokenizer()
    for k in range(3):
        lm = model.lm
        with torch.no_grad():
            lm.get_output_embeddings().weight.copy_(model.heads[k])  # the base model with head k as its output layer
        alone = sample_candidates(lm, tok, PROMPTS, GREEDY, progress=False)
        corner = torch.nn.functional.one_hot(torch.tensor([k, k]), 3).float()
        assert policy.respond(PROMPTS, corner, GREEDY) == alone


def test_weights_of_the_wrong_length_are_refused(mahalo_dir):
    policy = load_preference_policy(mahalo_dir)
    with pytest.raises(WeightsError):
        policy.respond(PROMPTS, torch.tensor([[0.5, 0.5]] * 2), GREEDY)


def test_guided_decoding_serves_a_reply_per_prompt(mahalo_dir, tiny_ensemble_dir):
    policy = load_preference_policy(mahalo_dir, guide=tiny_ensemble_dir, step_candidates=3, boundary="sentence",
                                    min_step_tokens=2, max_step_tokens=3)
    replies = policy.respond(PROMPTS, torch.tensor([[0.2, 0.5, 0.3]] * 2), SamplingConfig(1, 7, 0.8, 1.0))
    assert [len(r) for r in replies] == [1, 1] and all(isinstance(r[0], str) for r in replies)
    with pytest.raises(ConfigError, match="temperature must be > 0"):  # N greedy candidates would all be one
        policy.respond(PROMPTS, torch.tensor([[0.2, 0.5, 0.3]] * 2), GREEDY)


def test_evaluate_serves_the_mahalo_kind(mahalo_dir, tiny_ensemble_dir, tmp_path):
    result = run_evaluation(eval_config(tmp_path, mahalo_dir, tiny_ensemble_dir, method="mahalo", num_candidates=1))
    assert result["method"] == "mahalo" and result["policy_settings"]["kind"] == "mahalo"


def test_a_folder_without_heads_is_refused(tiny_policy_dir):
    with pytest.raises(ConfigError, match="not a MAHALO policy"):
        load_preference_policy(tiny_policy_dir, "mahalo")


def test_generate_serves_a_mahalo_folder_under_user_weights(mahalo_dir, tiny_ensemble_dir, capsys):
    from preforch.cli import main

    assert main(["generate", "--policy", mahalo_dir, "--ensemble", tiny_ensemble_dir, "--max_new_tokens", "4",
                 "--weights", "helpful=0.2,harmless=0.3,conciseness=0.5", "--prompt", "hi"]) == 0
    assert ">>> hi\nweights: helpful=0.2" in capsys.readouterr().out.replace("0.200", "0.2")


def test_arithmetic_prefixes_are_valued_by_the_checker_and_rollouts(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    from preforch.data.arithmetic import make_problems
    from preforch.models import load_policy

    lm, tok = load_policy(tiny_policy_dir, dtype=torch.float32, device="cpu")
    MultiHeadLM.from_base(lm, ("helpful", "harmless", "arithmetic"), noise_std=0.5).save_pretrained(tmp_path / "m", tok)
    policy = load_preference_policy(str(tmp_path / "m"), guide=tiny_ensemble_dir, step_candidates=2, rollouts=4,
                                    min_step_tokens=2, max_step_tokens=3)
    problem = make_problems(1, seed=0)[0]
    policy.rollout = lambda ids, tokens, w, n: [f"Answer: {problem.answer}", "Answer: -1", "no", "no"][:n]
    w = torch.tensor([0.2, 0.2, 0.6])
    ids = torch.tensor([[1, 2, 3]])
    _, tok = policy.model_and_tokenizer()
    rows = [tok("so", add_special_tokens=False).input_ids, tok("hmm", add_special_tokens=False).input_ids]
    scores = policy.step_scores(problem.prompt, ids, rows, w)
    assert scores.values[:, 2].tolist() == [-0.5, -0.5] and (scores.values[:, :2] != 0).any()  # (0.25 - 0.5) / 0.5
    other = policy.step_scores(({"role": "user", "content": "hi"},), ids, rows, w)  # no problem: no rollouts
    assert other.values[:, 2].tolist() == [0.0, 0.0]
    real = load_preference_policy(str(tmp_path / "m"), guide=tiny_ensemble_dir, step_candidates=2, rollouts=2,
                                  rollout_tokens=3, min_step_tokens=2, max_step_tokens=3)
    assert len(real.rollout(ids, rows[0], w, 2)) == 2
    assert len(real.respond([problem.prompt], w[None], SamplingConfig(1, 6, 0.8, 1.0))[0]) == 1
