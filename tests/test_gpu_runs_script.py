"""scripts/gpu_runs.sh: every preforch command it would run parses into its config (flags and recipes still exist)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Stands in for the CLI: parses the command line into the command's config; an unknown flag or a bad value raises
# ConfigError, so the command exits non-zero.
CHECK = """
import sys
from preforch.cli import COMMANDS
from preforch.tables import load_attr
from preforch.cli.parsing import parse_config
name, argv = sys.argv[1], sys.argv[2:]
parse_config(load_attr(COMMANDS[name][0]), argv, prog=name)
"""


@pytest.mark.parametrize("small", ["0", "1"])
def test_every_command_of_the_gpu_script_parses(tmp_path, small):
    runs = tmp_path / "runs"
    (runs / "mahalo" / "data").mkdir(parents=True)
    (runs / "mahalo" / "data" / "arithmetic_eval.jsonl").touch()  # as if the main run had sampled its pairs
    checker = tmp_path / "check.py"
    checker.write_text(CHECK)
    env = {**os.environ, "PREFORCH": f"{sys.executable} {checker}", "PY": sys.executable, "RUNS": str(runs),
           "SMALL": small, "SEEDS": "0", "PYTHONPATH": str(ROOT)}
    subprocess.run(["bash", str(ROOT / "scripts" / "gpu_runs.sh"), "rm", "mahalo", "mahalo_baselines", "orchestrator",
                    "mixed_benchmark", "mixed_rl", "mixed_rl_eval", "headline_benchmark", "headline_train", "headline_eval"],
                   env=env, check=True, timeout=600)
    rows = [line.split("\t") for line in (runs / "times.tsv").read_text().splitlines()]
    # reward models, MAHALO runs, their baselines, orchestrators (one seed), the mixed-intent benchmark, its six
    # RL arms and their evaluation, the headline's benchmark, its 10 arms x 2 seeds and their evaluation
    assert len(rows) == 4 + 3 + 4 + 4 + 1 + 6 + 1 + 1 + 20 + 1
    failed = {name: (runs / "logs" / f"{name}.log").read_text()[-500:] for name, rc, _ in rows if rc != "0"}
    assert not failed


def test_the_mahalo_baselines_read_given_pairs_and_refuse_to_wait_for_none(tmp_path):
    checker = tmp_path / "check.py"
    checker.write_text(CHECK)
    env = {**os.environ, "PREFORCH": f"{sys.executable} {checker}", "PY": sys.executable, "RUNS": str(tmp_path / "runs"),
           "SMALL": "1", "PYTHONPATH": str(ROOT)}
    script = ["bash", str(ROOT / "scripts" / "gpu_runs.sh"), "mahalo_baselines"]
    done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
    assert "run the mahalo part too, or set ARITH_DATA" in done.stderr  # nothing samples the pairs: no waiting
    data = tmp_path / "pairs"
    data.mkdir()
    (data / "arithmetic_eval.jsonl").touch()
    subprocess.run(script, env={**env, "ARITH_DATA": str(data)}, check=True, timeout=600)
    rows = [line.split("\t") for line in (tmp_path / "runs" / "times.tsv").read_text().splitlines()]
    assert len(rows) == 4 and all(rc == "0" for _, rc, _ in rows)
