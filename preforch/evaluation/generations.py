"""On-disk cache of sampled candidates, keyed by everything that determines them.

Re-scoring the same generations with another (judge) ensemble reads them back instead of sampling again.
A cache file is `<key>.jsonl` (one prompt per line) beside `<key>.json` (the settings it was made with).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

from preforch.data.schema import Message
from preforch.errors import DataError
from preforch.io import atomic_write_json, atomic_write_text


def cache_key(settings: dict, prompts: Sequence[Sequence[Message]]) -> str:
    blob = json.dumps({"settings": settings, "prompts": [list(p) for p in prompts]}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_generations(folder: Path, key: str, num_prompts: int) -> list[list[str]] | None:
    """Cached candidates for `key`, or None when absent. A truncated or corrupt file is an error, not a miss."""
    path = folder / f"{key}.jsonl"
    if not path.is_file():
        return None
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line)["candidates"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{path}:{n}: corrupt generation cache line (delete the file to regenerate)") from None
    if len(rows) != num_prompts:
        raise DataError(f"{path}: {len(rows)} cached prompts, expected {num_prompts} (delete the file to regenerate)")
    return rows


def save_generations(folder: Path, key: str, settings: dict, prompts: Sequence[Sequence[Message]],
                     candidates: list[list[str]]) -> Path:
    path = folder / f"{key}.jsonl"
    atomic_write_json(folder / f"{key}.json", settings)
    atomic_write_text(path, "".join(json.dumps({"prompt": list(p), "candidates": c}, ensure_ascii=False) + "\n"
                                    for p, c in zip(prompts, candidates)))
    return path
