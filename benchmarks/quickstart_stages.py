"""Quickstart stage times with bf16 autocast on and off, on the same machine in one run.

    python benchmarks/quickstart_stages.py [--modes 0 1] [--output_root runs/bench_quickstart]

Each mode runs the whole `preforch quickstart` from scratch (its own run folder, `--overwrite true`) in a
subprocess with `PREFORCH_BF16` set, and reads the stage times from the run's metrics.json. `PREFORCH_BF16=0`
is what most CPUs get (no AMX / AVX512-BF16): no bf16 anywhere, decoding included. The SmolLM2 conversion
is a one-time cost shared by both runs (its cache is reused) and is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import save


def run_mode(flag: str, folder: Path) -> dict:
    env = {**os.environ, "PREFORCH_BF16": flag, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "preforch", "quickstart", "--output_dir", str(folder), "--overwrite", "true"],
                   env=env, check=True)
    wall = time.perf_counter() - started
    metrics = json.loads((folder / "metrics.json").read_text())
    stages = {k: round(v, 1) for k, v in metrics["timings_s"].items()}
    return {"stages_s": stages, "stages_total_s": round(sum(v for k, v in stages.items() if k != "policy"), 1),
            "wall_s": round(wall, 1), "reward_model_accuracy": metrics["reward_models"]["eval_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", nargs="+", default=["0", "1"], choices=["0", "1"], help="PREFORCH_BF16 values to run")
    ap.add_argument("--output_root", default="runs/bench_quickstart")
    args = ap.parse_args()
    root = Path(args.output_root)
    results = {f"bf16={m}": run_mode(m, root / f"bf16_{m}") for m in args.modes}
    save("quickstart_stages", {"note": "stages_total_s excludes the one-time SmolLM2 conversion ('policy')",
                               "runs": results})


if __name__ == "__main__":
    main()
