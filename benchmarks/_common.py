"""Shared helpers: machine description and result files for benchmarks/*.py."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "platform": platform.platform()}


def timed(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def save(name: str, result: dict, tag: str = "") -> Path:
    """Write results/NAME[_TAG].json: a tag keeps a partial or variant run from overwriting the reference one."""
    from preforch.io import atomic_write_json

    path = RESULTS / f"{name}{'_' + tag if tag else ''}.json"
    atomic_write_json(path, {"benchmark": name, "machine": machine(), **result})
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return path
