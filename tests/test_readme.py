"""The README's Python snippet runs as written (real bundled MiniLM and data; a few seconds), and the README names
the command CI runs. That every documented command and option exists: tests/test_docs.py."""

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def _snippet() -> str:
    text = README.read_text()
    match = re.search(r"<!-- readme-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its marked Python snippet"
    return match.group(1)


def test_readme_snippet_runs_and_prints_simplex_weights(capsys):
    namespace: dict = {}
    exec(compile(_snippet(), str(README), "exec"), namespace)
    weights = namespace["weights"]
    assert weights.shape == (1, 2)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert namespace["info"]["loss_history"][-1] < namespace["info"]["loss_history"][0]
    assert "conciseness" in capsys.readouterr().out


def test_readme_names_the_ci_test_command():
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci and "bash scripts/test.sh" in README.read_text()
