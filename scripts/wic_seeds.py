"""Pool `preforch wic-compare` runs that differ only in --seed and share one --eval_seed (so every run's arms
answered the same held-out prompts): for each pair of arms, the combined reward's per-prompt difference per
training seed and pooled over seeds, the larger of the two arms' seed-to-seed noise floors, and whether the pooled
result clears it. These are the headline test's statistics (preforch/evaluation/headline.py, docs/design.md)
applied to weights-in-context arms.

    python scripts/wic_seeds.py runs/wic_seed0 runs/wic_seed1 --pairs pro-wic-offline:ric-offline pro-wic:ric-online \
        --output benchmarks/results/wic_seeds.json

Prints a markdown table (z units of the judge, mean of source means, 95% bootstrap CI) and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from preforch.errors import DataError
from preforch.evaluation.headline import noise_floor, reach
from preforch.io import atomic_write_json
from preforch.pipelines.headline import compare


def per_prompt(run: Path, arm: str, weighting: str) -> tuple[np.ndarray, list[str], dict]:
    """One arm's combined reward per prompt [P] under `weighting` (a row label: uniform | orchestrator), the
    prompts' sources [P] and the evaluation's config."""
    file = run / "eval" / arm / "evaluation.json"
    if not file.is_file():
        raise DataError(f"{file}: no such evaluation (is {run} a finished wic-compare run with arm {arm!r}?)")
    evaluation = json.loads(file.read_text())
    rows = {r["label"]: r for r in evaluation["rows"]}
    if weighting not in rows:
        raise DataError(f"{file}: no row {weighting!r} (rows: {', '.join(rows)})")
    return np.asarray(rows[weighting]["combined"]["per_prompt"]), evaluation["prompt_sources"], evaluation["config"]


def pool(runs: list[Path], pairs: list[tuple[str, str]], weighting: str) -> dict:
    """{"a - b": headline `compare` result} over the runs (training seeds) for each pair."""
    scores, sources, judged = {}, None, None
    for seed, run in enumerate(runs):
        for arm in dict.fromkeys(a for pair in pairs for a in pair):
            values, src, config = per_prompt(run, arm, weighting)
            same = {k: config[k] for k in ("eval_data", "prompts_per_source", "seed", "judge")}
            if sources is None:
                sources, judged = src, same
            elif src != sources or same != judged:
                raise DataError(f"{run}/eval/{arm}: judged other prompts than {runs[0]} ({same} vs {judged}): "
                                "pool runs made with one --eval_seed")
            scores.setdefault(arm, {})[seed] = values
    floors = {arm: noise_floor([s[k] for k in sorted(s)], sources) for arm, s in scores.items()}
    return {f"{a} - {b}": compare(scores[a], scores[b], sources, [floors[a], floors[b]]) for a, b in pairs}


def _interval(entry: dict) -> str:
    lo, hi = entry["ci95"]
    return f"{entry['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="wic-compare output folders, one per training seed (at least two)")
    ap.add_argument("--pairs", nargs="+", required=True, help="A:B, arm A minus arm B")
    ap.add_argument("--output", type=Path, default=None, help="JSON file for the results")
    args = ap.parse_args()
    if len(args.runs) < 2:
        ap.error("a noise floor needs at least two runs (training seeds)")
    pairs = [tuple(p.split(":", 1)) for p in args.pairs]
    if any(len(p) != 2 for p in pairs):
        ap.error(f"--pairs: expected A:B, got {args.pairs}")
    result = {"runs": [str(r) for r in args.runs],
              "weightings": {w: pool(args.runs, pairs, w) for w in ("uniform", "orchestrator")}}
    print("| difference | weights | per seed | pooled | noise floor | clears it |\n|---|---|---|---|---|---|")
    for weighting, comparisons in result["weightings"].items():
        for name, c in comparisons.items():
            seeds = ", ".join(_interval(s["overall"]) for s in c["per_seed"].values())
            print(f"| {name} | {weighting} | {seeds} | {_interval(c['pooled']['overall'])} | "
                  f"±{reach(c['noise_floor']):.3f} | {'yes' if c['bold'] else 'no'} |")
    if args.output:
        atomic_write_json(args.output, result)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
