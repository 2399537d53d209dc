"""Evaluated replies kept as data, so anyone can judge them again with a judge of their own.

A replies file is gzip-compressed JSON lines, one evaluated reply per line: `prompt` (chat messages), `source`,
`arm`, `seed`, `reply`, and the `scores` {objective: value or null} its judge gave it. `preforch rejudge` scores
every reply with another reward ensemble, writes the same rows with that judge's scores, and summarises each
objective's mean by arm and source over the replies it applies to, without training or generating again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from preforch.data.schema import as_messages
from preforch.errors import DataError
from preforch.evaluation.metrics import objective_means, scores_from_lists
from preforch.io import atomic_write_json, atomic_write_text, read_jsonl

REPLY_FIELDS = ("prompt", "source", "arm", "seed", "reply")


def write_replies(path: str | Path, rows: Iterable[dict]) -> None:
    """Write evaluated replies (dicts with at least REPLY_FIELDS) to `path` (.jsonl.gz) atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_replies(path: str | Path) -> list[dict]:
    """The rows of a replies file; a `DataError` naming the file, line and field for a row missing one of
    REPLY_FIELDS or whose prompt is no chat."""
    rows = []
    for where, row in read_jsonl(path):
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with {list(REPLY_FIELDS)}, got {type(row).__name__}")
        missing = [f for f in REPLY_FIELDS if f not in row]
        if missing:
            raise DataError(f"{where}: missing field(s) {missing}")
        if not isinstance(row["reply"], str):
            raise DataError(f"{where}: field 'reply' must be text, got {type(row['reply']).__name__}")
        rows.append({**row, "prompt": as_messages(row["prompt"], f"{where}: field 'prompt'")})
    if not rows:
        raise DataError(f"{path}: no replies")
    return rows


def rejudge(rows: Sequence[dict], judge) -> list[dict]:
    """`rows` with `scores` replaced by `judge`'s (a RewardEnsemble) normalised scores, null where an objective
    does not apply."""
    scores = judge.score([r["prompt"] for r in rows], [r["reply"] for r in rows], progress=True).tolist()
    return [{**r, "prompt": list(r["prompt"]), "scores": dict(zip(judge.objectives, s))} for r, s in zip(rows, scores)]


def summarise(rows: Sequence[dict], objectives: Sequence[str]) -> dict[str, dict[str, dict]]:
    """{arm: {source: objective_means}} over `rows` judged on `objectives` (each over the replies it applies to,
    pooled over seeds)."""
    groups: dict[tuple[str, str], list[list]] = defaultdict(list)
    for r in rows:
        groups[(str(r["arm"]), str(r["source"]))].append([r["scores"].get(o) for o in objectives])
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for (arm, source), values in groups.items():
        out[arm][source] = objective_means(scores_from_lists(values), objectives)
    return dict(out)


def run_rejudge(cfg) -> dict:
    """`preforch rejudge`: read `cfg.replies`, score them with `cfg.judge`, write OUTPUT_DIR/replies.jsonl.gz and
    OUTPUT_DIR/summary.json."""
    from preforch.rewards.ensemble import RewardEnsemble

    rows = read_replies(cfg.replies)
    judge = RewardEnsemble.load(cfg.judge)
    judged = rejudge(rows, judge)
    out = Path(cfg.output_dir)
    write_replies(out / "replies.jsonl.gz", judged)
    summary = {"replies": cfg.replies, "judge": cfg.judge, "objectives": list(judge.objectives),
               "num_replies": len(judged), "by_arm": summarise(judged, judge.objectives)}
    atomic_write_json(out / "summary.json", summary)
    return summary
