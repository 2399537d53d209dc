"""`preforch compare` as one library call: read evaluation folders, refuse mismatches, write the comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from preforch.errors import ConfigError
from preforch.io import read_json
from preforch.evaluation.report import on_front, write_comparison


def compare_runs(runs: Sequence[str], output_dir: str | Path) -> dict:
    """Side-by-side report of `runs` (folders holding evaluation.json) in `output_dir`; `ConfigError` for a
    folder without one, or runs whose objectives, reference points or front objectives (those applying to their
    prompts) differ: hypervolumes would not compare."""
    if not runs:
        raise ConfigError("give one or more evaluation folders: preforch compare runs/eval_a runs/eval_b")
    results = {}
    for run in runs:
        file = Path(run) / "evaluation.json"
        if not file.is_file():
            raise ConfigError(f"{run}: not an evaluation folder (missing evaluation.json; run preforch evaluate)")
        name = Path(run).name if Path(run).name not in results else str(run)
        results[name] = read_json(file)
        if not isinstance(results[name], dict) or not {"objectives", "reference_point"} <= set(results[name]):
            raise ConfigError(f"{file}: not an evaluation result (expected an object with objectives and reference_point)")
    first_name, first = next(iter(results.items()))
    for name, r in results.items():
        if r["objectives"] != first["objectives"]:
            raise ConfigError(f"{name}: objectives {r['objectives']} differ from {first_name}'s {first['objectives']}")
        if r["reference_point"] != first["reference_point"]:
            raise ConfigError(f"{name}: reference point {r['reference_point']} differs from {first_name}'s "
                              f"{first['reference_point']}; hypervolumes are only comparable under one reference point")
        if on_front(r) != on_front(first):
            raise ConfigError(f"{name}: front over {on_front(r)}, {first_name}'s over {on_front(first)} (an objective "
                              "that applies to none of a run's prompts is left out); evaluate both on the same prompts")
    return write_comparison(Path(output_dir), results)
