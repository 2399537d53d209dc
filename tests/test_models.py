"""preforch/models.py: the bundled SmolLM2's one-time conversion needs the gguf extra, and says so."""

import importlib.util

import pytest

from preforch import models
from preforch.errors import ConfigError


def test_converting_the_bundled_policy_without_gguf_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFORCH_CACHE", str(tmp_path))  # nothing converted yet
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"needs the gguf package: pip install 'preforch\[gguf\]'"):
        models.smollm2_path(verbose=False)
    assert not any(tmp_path.iterdir()), "nothing half-written"


@pytest.mark.parametrize("path", ["runs/quickstart/rewards/reward_model", "./my_rm", "/no/such/model", "~/rm"])
def test_a_missing_local_folder_is_named_at_once_not_tried_on_the_hub(path):
    from preforch.models import load_pretrained

    class NeverCalled:  # transformers would retry the Hub for ~50 s before failing
        @staticmethod
        def from_pretrained(*args, **kwargs):
            raise AssertionError("the Hub was tried")

    with pytest.raises(ConfigError, match=f"^reward-model tokenizer '{path}': no such folder"):
        load_pretrained(NeverCalled, path, "reward-model tokenizer")
