import pytest
import torch

from preforch.errors import ConfigError, ObjectiveMismatchError
from preforch.orchestrator.preference import load_orchestrator, preference_weights
from tests.conftest import make_pairs

OBJ = ("helpful", "harmless", "conciseness")  # the tiny orchestrator's objectives


def test_full_spec_needs_no_orchestrator(tmp_path):
    prompts = make_pairs(4).prompts
    w = preference_weights("helpful=0.7,harmless=0.3", prompts, OBJ, str(tmp_path / "never_loaded"))
    assert w.shape == (4, 3) and w[0].tolist() == pytest.approx([0.7, 0.3, 0.0])


@pytest.mark.parametrize("spec, message", [
    ("harmless=0.5,auto", r"^--weights harmless=0.5,auto: 'auto' fills from the orchestrator; add --orchestrator DIR"),
    ("auto", "add --orchestrator DIR"),
    (None, r"give --weights name=value,\.\.\. or --orchestrator DIR"),
])
def test_orchestrator_needed_but_not_given(spec, message):
    for missing in (None, ""):
        with pytest.raises(ConfigError, match=message):
            preference_weights(spec, make_pairs(2).prompts, OBJ, missing)


def test_partial_spec_filled_by_the_orchestrator(tiny_orchestrator_dir):
    prompts = make_pairs(6).prompts
    orch = load_orchestrator(tiny_orchestrator_dir, OBJ)
    predicted = orch.predict(prompts)
    assert torch.equal(preference_weights(None, prompts, OBJ, orch), predicted)
    w = preference_weights("harmless=0.5,auto", prompts, OBJ, tiny_orchestrator_dir)  # a folder is loaded here
    assert w.shape == (6, 3) and (w[:, 1] == 0.5).all()
    assert torch.allclose(w.sum(-1), torch.ones(6))
    # the free objectives keep the orchestrator's ratio
    assert torch.allclose(w[:, 0] / w[:, 2], predicted[:, 0] / predicted[:, 2])


def test_load_orchestrator_checks_objectives(tiny_orchestrator_dir):
    with pytest.raises(ObjectiveMismatchError, match="do not match the reward ensemble"):
        load_orchestrator(tiny_orchestrator_dir, ("helpful", "harmless"))
