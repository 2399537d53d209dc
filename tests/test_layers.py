"""Library layers import downwards only: data -> rewards -> orchestrator -> alignment -> serving -> evaluation
-> pipelines -> cli (DESIGN.md section 6). Checked on the source, so a lazy import inside a function counts."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "preforch"
# orchestrator/ is left out: orchestrator/evaluate.py still takes its metrics from evaluation/metrics.py.
ABOVE = {"data": ("alignment", "serving", "evaluation", "pipelines", "cli"),
         "rewards": ("alignment", "serving", "evaluation", "pipelines", "cli"),
         "alignment": ("serving", "evaluation", "pipelines", "cli"),
         "serving": ("evaluation", "pipelines", "cli"),
         "evaluation": ("pipelines", "cli"),
         "pipelines": ("cli",)}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_a_layer_never_imports_one_above_it(layer):
    wrong = [f"{path.relative_to(PACKAGE)} imports {module}" for path in sorted((PACKAGE / layer).rglob("*.py"))
             for module in _imports(path) if any(module.startswith(f"preforch.{up}") for up in ABOVE[layer])]
    assert not wrong, wrong
