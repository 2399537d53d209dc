"""The README's Python snippet runs as written (real bundled MiniLM and data; a few seconds), and every command
line in the README and docs names options that exist."""

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


def _documented_commands() -> list[tuple[str, str, list[str]]]:
    """(file, command, its --options) of every `$P <command> ...` (or `preforch <command>`) line in the bash blocks
    of the README and docs/, continuations joined."""
    out = []
    for doc in [README, *sorted((README.parent / "docs").glob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = line.split("#")[0].split()
                if len(words) > 1 and words[0] in ("$P", "preforch", ".venv/bin/preforch"):
                    out.append((doc.name, words[1], [w[2:] for w in words[2:] if w.startswith("--")]))
    return out


def test_every_documented_command_and_option_exists():
    from dataclasses import fields

    from trl import DPOConfig, GRPOConfig, SFTConfig

    from preforch.cli import COMMANDS
    from preforch.tables import load_attr

    commands = _documented_commands()
    assert sum(doc == "README.md" for doc, _, _ in commands) > 20, "README lost its recipes"
    for doc, name, options in commands:
        assert name in COMMANDS, f"{doc} runs unknown command {name!r}"
        known = {f.name for f in fields(load_attr(COMMANDS[name][0]))} | {"config"}
        if "trl" in known:  # --trl.FIELD: a field of a TRL trainer config
            known |= {f"trl.{f.name}" for c in (GRPOConfig, SFTConfig, DPOConfig) for f in fields(c)}
        assert not set(options) - known, f"{doc}: preforch {name} has no option(s) {sorted(set(options) - known)}"
