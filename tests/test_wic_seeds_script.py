"""scripts/wic_seeds.py: wic-compare runs of several training seeds pooled with the headline test's statistics."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from preforch.errors import DataError

SCRIPT = Path(__file__).parents[1] / "scripts" / "wic_seeds.py"
SOURCES = ["hh-helpful"] * 4 + ["hh-harmless"] * 4


def _script():
    spec = importlib.util.spec_from_file_location("wic_seeds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, arms: dict[str, list[float]], eval_seed: int = 0) -> Path:
    for arm, values in arms.items():
        rows = [{"label": label, "combined": {"per_prompt": values}} for label in ("uniform", "orchestrator")]
        config = {"eval_data": ["a", "b"], "prompts_per_source": 4, "seed": eval_seed, "judge": "j"}
        (folder / "eval" / arm).mkdir(parents=True)
        (folder / "eval" / arm / "evaluation.json").write_text(
            json.dumps({"rows": rows, "prompt_sources": SOURCES, "config": config}))
    return folder


def test_pooled_difference_noise_floor_and_bold(tmp_path):
    base = np.linspace(-1, 1, 8)
    seed0 = _run(tmp_path / "s0", {"pro": list(base + 1.0), "ric": list(base)})
    seed1 = _run(tmp_path / "s1", {"pro": list(base + 1.2), "ric": list(base + 0.1)})
    result = _script().pool([seed0, seed1], [("pro", "ric")], "orchestrator")["pro - ric"]
    assert result["pooled"]["overall"]["mean"] == pytest.approx(1.05)  # (1.0 + 1.1) / 2 on every prompt
    assert [s["overall"]["mean"] for s in result["per_seed"].values()] == pytest.approx([1.0, 1.1])
    assert result["noise_floor"]["mean"] == pytest.approx(0.2)  # pro moved 0.2 between seeds, ric 0.1: the larger
    assert result["bold"]  # a difference of 1.05 on every prompt clears a floor of 0.2

    close = _run(tmp_path / "s2", {"pro": list(base + 1.0), "ric": list(base + 0.9)})
    assert not _script().pool([seed0, close], [("pro", "ric")], "uniform")["pro - ric"]["bold"]


def test_runs_judged_on_other_prompts_are_refused_naming_the_run(tmp_path):
    seed0 = _run(tmp_path / "s0", {"pro": [0.0] * 8, "ric": [0.0] * 8})
    other = _run(tmp_path / "s1", {"pro": [0.0] * 8, "ric": [0.0] * 8}, eval_seed=1)
    with pytest.raises(DataError, match=r"s1/eval/pro: judged other prompts than .*one --eval_seed"):
        _script().pool([seed0, other], [("pro", "ric")], "uniform")
    with pytest.raises(DataError, match="no such evaluation"):
        _script().pool([seed0, tmp_path / "missing"], [("pro", "ric")], "uniform")
