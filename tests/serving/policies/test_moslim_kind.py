"""Kind `moslim`: a preference becomes a levels tag; evaluate and generate serve it."""

import json

import pytest
import torch

from preforch.cli import main
from preforch.errors import ConfigError
from preforch.evaluation.harness import run_evaluation
from preforch.serving.policies.folder import POLICY_FILE, load_preference_policy
from tests.conftest import eval_config

OBJ = ("helpful", "harmless", "conciseness")  # the judge's objectives; the classifier has helpful, harmless, quality


@pytest.fixture
def moslim_dir(tiny_policy_dir, tiny_classifier_dir, tmp_path):
    folder = tmp_path / "moslim"
    folder.mkdir()
    (folder / POLICY_FILE).write_text(json.dumps({"kind": "moslim", "policy": tiny_policy_dir,
                                                  "classifier": tiny_classifier_dir}))
    return str(folder)


def test_weights_become_a_tag_of_the_classifiers_heads(moslim_dir):
    policy = load_preference_policy(moslim_dir, objectives=OBJ)
    prompts = [({"role": "user", "content": "hi"},)] * 3
    w = torch.tensor([[0.6, 0.2, 0.2], [1 / 3, 1 / 3, 1 / 3], [0.1, 0.1, 0.8]])
    asked = [p[-1]["content"] for p in policy.conditioned(prompts, w)]
    # quality has no weight column, conciseness no head: an all-conciseness preference leaves the prompt untagged
    assert asked == ["<levels helpful=1>\nhi", "<levels helpful=1 harmless=1>\nhi", "hi"]


def test_evaluate_and_generate_serve_it(moslim_dir, tiny_ensemble_dir, tmp_path):
    r = run_evaluation(eval_config(tmp_path, moslim_dir, tiny_ensemble_dir, num_candidates=None))
    assert r["method"] == "moslim" and r["num_candidates"] == 1
    out = tmp_path / "gen.jsonl"
    assert main(["generate", "--prompt", "How do I bake bread?", "--policy", moslim_dir, "--ensemble", tiny_ensemble_dir,
                 "--weights", "helpful=0.8,harmless=0.2,conciseness=0", "--max_new_tokens", "4", "--output", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["prompt"].startswith("<levels helpful=1>\n") and set(row["rewards"]) == set(OBJ)


def test_a_bare_model_without_a_classifier_is_refused(tiny_policy_dir):
    with pytest.raises(ConfigError, match="no moslim.json and no classification reward model"):
        load_preference_policy(tiny_policy_dir, "moslim", objectives=OBJ)
