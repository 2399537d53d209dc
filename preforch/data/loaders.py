"""Load preference data from the bundled sets, JSONL/CSV files or `datasets` objects into one schema.

Accepted record shapes (detected per record):
- `{"prompt": str, "chosen": str, "rejected": str}` (UltraFeedback-style strings);
- `{"prompt": [messages], "chosen": [messages] | str, "rejected": [messages] | str}` (TRL conversational);
- `{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": "..."}` (HH-RLHF dialogues, no prompt).
An optional `source` field is kept as metadata for evaluation.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

from preforch.data.arithmetic import make_fresh_problems, problem_triple
from preforch.data.hh import split_pair
from preforch.data.schema import PreferenceDataset, PreferencePair, as_messages
from preforch.data.splits import first_turn_key, shared_first_turns, split_by_first_turn
from preforch.errors import ConfigError, DataError
from preforch.io import read_json, read_jsonl, read_text
from preforch.offline import hub_offline

T = TypeVar("T")
# name -> (file stem, source label). Splits: "train" / "test" (see bundled/README.md).
BUNDLED = {
    "hh-helpful": ("hh_rlhf_helpful_base", "hh-helpful"),
    "hh-harmless": ("hh_rlhf_harmless_base", "hh-harmless"),
    "ultrafeedback": ("ultrafeedback_binarized", "ultrafeedback"),
    # SmolLM2-135M-Instruct's own answers to seeded arithmetic problems, a right one chosen over a wrong one: the
    # bundled policy's verifiable pairs for train-mahalo, without sampling them again (bundled/README.md)
    "arithmetic-smollm2": ("arithmetic_smollm2", "arithmetic"),
}
FRESH_ARITHMETIC = "arithmetic-fresh"  # `arithmetic-fresh:<phrasing>:<n>[:<seed>]`, see `load_fresh_arithmetic`
# `spec#judge` / `spec#eval`: the two halves of spec's pairs split by first human turn (`split_by_first_turn`, half
# each, seed 0), so a judge trained on one never saw a conversation of the other (docs/design.md, the headline test)
HALVES = ("judge", "eval")


def _reply(value: Any, field: str, where: str) -> str:
    """A reply given as a string or as a one-assistant-message list."""
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            raise DataError(f"{where}: field '{field}' must be a string or a list with one assistant message")
        value = value[0].get("content")
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{field}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field '{field}' is empty")
    return value


def record_to_pair(record: Mapping[str, Any], where: str, source: str = "") -> PreferencePair:
    """Convert one raw record (any accepted shape) into a `PreferencePair`; `where` prefixes errors."""
    if not isinstance(record, Mapping):
        raise DataError(f"{where}: expected an object, got {type(record).__name__}")
    missing = [f for f in ("chosen", "rejected") if f not in record or record[f] is None]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing} (have {sorted(record)})")
    src = str(record.get("source") or source)
    prompt = record.get("prompt")
    if prompt is None or (isinstance(prompt, str) and not prompt.strip() and isinstance(record["chosen"], str)
                          and "\n\nHuman:" in record["chosen"]):
        if not (isinstance(record["chosen"], str) and isinstance(record["rejected"], str)):
            raise DataError(f"{where}: missing field 'prompt'")
        msgs, chosen, rejected = split_pair(record["chosen"], record["rejected"], where)
        return PreferencePair(as_messages(msgs, where), _reply(chosen, "chosen", where),
                              _reply(rejected, "rejected", where), src)
    return PreferencePair(
        as_messages(prompt, f"{where}: field 'prompt'"),
        _reply(record["chosen"], "chosen", where),
        _reply(record["rejected"], "rejected", where),
        src,
    )


def _read_csv(path: Path) -> Iterable[tuple[str, Any]]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    for row in reader:
        yield f"{path}:{reader.line_num}", {k: v for k, v in row.items() if k is not None}


def read_records(path: str | Path) -> Iterable[tuple[str, Any]]:
    """(where, raw record) of each record in a `.jsonl`, `.json` (list) or `.csv` file (optionally `.gz`);
    `where` is file:line (file: record i for .json), for error messages."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    kind = path.name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    if kind == "jsonl":
        return read_jsonl(path)
    if kind == "csv":
        return _read_csv(path)
    if kind != "json":
        raise DataError(f"{path}: unsupported file type {kind!r} (use .jsonl, .json or .csv, optionally .gz)")
    data = read_json(path, DataError)
    if not isinstance(data, list):
        raise DataError(f"{path}: a .json file must hold a list of records")
    return ((f"{path}: record {i}", r) for i, r in enumerate(data))


def bundled_path(name: str, split: str = "train") -> Path:
    """The file of one of the preference sets shipped in the package (see `BUNDLED`); `split` is train or test."""
    if name not in BUNDLED:
        raise DataError(f"unknown bundled dataset {name!r}; choose from {sorted(BUNDLED)}")
    if split not in ("train", "test"):
        raise DataError(f"bundled dataset {name!r}: split must be 'train' or 'test', got {split!r}")
    return Path(__file__).parent / "bundled" / f"{BUNDLED[name][0]}_{split}.jsonl.gz"


def load_file(path: str | Path, source: str = "", limit: int | None = None,
              skip_invalid: bool = False) -> PreferenceDataset:
    """Load a `.jsonl`, `.json` (list), `.csv` file (optionally `.gz`) into a `PreferenceDataset`.

    A malformed record raises `DataError` naming file:line and field, unless `skip_invalid` (used for
    the bundled upstream samples), which drops such records and warns once with the count.
    """
    source = source or Path(path).name.split(".")[0]
    return PreferenceDataset(convert_records(path, lambda r, where: record_to_pair(r, where, source), limit, skip_invalid))


def convert_records(path: str | Path, convert: Callable[[Any, str], T], limit: int | None = None,
                    skip_invalid: bool = False) -> list[T]:
    """`convert(record, where)` of each record of a file (`read_records`), up to `limit`. A `DataError` from it
    propagates unless `skip_invalid`, which drops such records and warns once with the count."""
    out, skipped = [], []
    for where, record in read_records(path):
        try:
            out.append(convert(record, where))
        except DataError as e:
            if not skip_invalid:
                raise
            skipped.append(str(e))
        if limit is not None and len(out) >= limit:
            break
    if skipped:
        warnings.warn(f"skipped {len(skipped)} malformed record(s), first: {skipped[0]}", stacklevel=3)
    if not out:
        raise DataError(f"{path}: no records")
    return out


def load_hf_dataset(dataset, source: str = "", limit: int | None = None, where: str | None = None) -> PreferenceDataset:
    """Load a `datasets.Dataset` (or any sequence of dict records) in one of the accepted shapes; errors name
    `where` (default: the dataset's name) and the row."""
    name = where or getattr(dataset, "info", None) and dataset.info.dataset_name or source or "dataset"
    pairs = []
    for i, record in enumerate(dataset):
        pairs.append(record_to_pair(record, f"{name}: row {i}", source))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise DataError(f"{name}: no records")
    return PreferenceDataset(pairs)


def load_bundled(name: str, split: str = "train", limit: int | None = None) -> PreferenceDataset:
    """One of the preference sets shipped in the package (see `BUNDLED`); `split` is train or test."""
    return load_file(bundled_path(name, split), source=BUNDLED[name][1], limit=limit, skip_invalid=True)


TEXT_FILES = ("jsonl", "json", "csv")  # read here, with file:line errors
DATASETS_FILES = ("parquet", "arrow")  # read by `datasets`, with row errors


def load_preferences(spec: str, limit: int | None = None) -> PreferenceDataset:
    """Resolve a data spec:
    - `bundled-name[:split]` (e.g. `hh-harmless:test`);
    - `arithmetic-fresh:<phrasing>:<n>[:<seed>]`: evaluation problems no bundled training problem asks
      (`load_fresh_arithmetic`);
    - a `.jsonl` / `.json` / `.csv` file (optionally `.gz`);
    - a `.parquet` or `.arrow` file, or a folder: one written by `Dataset.save_to_disk` (`folder[:split]` for a
      `DatasetDict`) or one of data files;
    - anything else `datasets.load_dataset` accepts: a Hub id `name[@config][:split]`
      (`Anthropic/hh-rlhf:test`, `HuggingFaceH4/ultrafeedback_binarized:test_prefs`), read from the local cache
      when offline.
    Several specs can be joined with `+` (`hh-helpful:train+hh-harmless:train`); each keeps its source.
    A spec ending in `#judge` or `#eval` is one half of its pairs split by first human turn (`hh-helpful:test#judge`,
    `hh-helpful:test#eval`): the halves share no conversation, and a first turn found in several specs falls in the
    same half in each.
    """
    if "+" in spec and not Path(spec).exists():
        return PreferenceDataset.concat(load_preferences(s, limit) for s in spec.split("+"))
    base, hash_, half = spec.rpartition("#")
    if hash_ and not Path(spec).exists():
        if half not in HALVES:
            raise DataError(f"{spec}: unknown half {half!r}; expected {base}#{HALVES[0]} or {base}#{HALVES[1]}")
        return split_by_first_turn(load_preferences(base), 0.5, seed=0)[HALVES.index(half)][:limit]
    name, _, split = spec.partition(":")
    if name in BUNDLED:
        return load_bundled(name, split or "train", limit)
    if name == FRESH_ARITHMETIC:
        return load_fresh_arithmetic(spec)[:limit]
    if Path(spec).is_dir() or _file_kind(spec) in DATASETS_FILES or (not Path(spec).exists() and not _file_kind(spec)):
        return load_with_datasets(spec, limit)
    return load_file(spec, limit=limit)


def load_fresh_arithmetic(spec: str) -> PreferenceDataset:
    """`arithmetic-fresh:<phrasing>:<n>[:<seed>]` (seed 0 by default): n one-step problems
    (`arithmetic.make_fresh_problems`) whose (operation, a, b) no bundled training problem (`arithmetic-smollm2:train`)
    asks, phrased 'trained', 'fresh' or 'mixed' (half each), for evaluation: exact match judges the replies, so each
    pair is only the right answer over a wrong one (answer + 1), source 'arithmetic' as the bundled problems'."""
    parts = spec.split(":")[1:]
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        raise DataError(f"{spec}: expected {FRESH_ARITHMETIC}:<phrasing>:<n>[:<seed>], "
                        f"e.g. {FRESH_ARITHMETIC}:mixed:200")
    phrasing, n, seed = parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 0
    trained = {problem_triple(p.prompt) for p in load_bundled("arithmetic-smollm2", "train")}
    source = BUNDLED["arithmetic-smollm2"][1]
    return PreferenceDataset([PreferencePair(p.prompt, str(p.answer), str(p.answer + 1), source)
                              for p in make_fresh_problems(n, seed, trained, phrasing)])


def _file_kind(spec: str) -> str:
    """'jsonl', 'parquet', ... for a spec naming a data file (its split suffix ignored), '' otherwise."""
    kind = Path(spec.rsplit(":", 1)[0] if ":" in spec and not Path(spec).exists() else spec).name
    kind = kind.removesuffix(".gz").rsplit(".", 1)
    return kind[1].lower() if len(kind) == 2 and kind[1].lower() in (*TEXT_FILES, *DATASETS_FILES) else ""


def load_with_datasets(spec: str, limit: int | None = None) -> PreferenceDataset:
    """A parquet / arrow file, a saved or data-file folder, or a Hub dataset (see `load_preferences`) through
    `datasets`, mapped to the preference schema; every failure to find or read it is one `DataError` line."""
    import datasets

    target, split = (spec.rsplit(":", 1) if ":" in spec and not Path(spec).exists() else (spec, ""))
    path = Path(target)
    try:
        if path.is_dir() and any((path / f).is_file() for f in ("dataset_info.json", "dataset_dict.json", "state.json")):
            data = datasets.load_from_disk(str(path))
        elif path.is_file():
            data = datasets.load_dataset(_file_kind(target), data_files=str(path), split="train")
        elif path.is_dir():
            data = datasets.load_dataset(str(path))
        else:
            hub_offline()  # the Hub asked once: unreachable, this process goes offline and a missing id fails at once
            name, _, config = target.partition("@")
            data, split = datasets.load_dataset(name, config or None, split=split or None), ""  # only that split
    except Exception as e:  # datasets raises many kinds (not found, offline, format); the user needs one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        offline = " (offline: only datasets in the local Hugging Face cache load)" if datasets.config.HF_HUB_OFFLINE else ""
        raise DataError(f"{spec}: could not load it with datasets.load_dataset{offline}: {first}") from None
    if isinstance(data, datasets.DatasetDict):
        if not split and len(data) > 1:
            raise DataError(f"{spec}: has splits {sorted(data)}; name one as {target}:SPLIT")
        if split and split not in data:
            raise DataError(f"{spec}: no split {split!r}; it has {sorted(data)}")
        data = data[split or next(iter(data))]
    elif split:
        raise DataError(f"{spec}: {target} holds one split; drop ':{split}'")
    return load_hf_dataset(data, source=Path(target).name.split(".")[0] or target, limit=limit, where=spec)


def user_turns(pair: PreferencePair) -> int:
    """How many user messages the pair's prompt holds (1 for a single-turn question)."""
    return sum(m["role"] == "user" for m in pair.prompt)


def load_many(specs: Iterable[str], limit: int | None = None, max_user_turns: int | None = None) -> PreferenceDataset:
    """Concatenate several data specs, keeping each record's source. With `max_user_turns`, only pairs whose
    prompt has at most that many user messages; then each spec is capped at `limit` pairs."""
    specs = list(specs)
    if not specs:
        raise DataError("no data given")
    if max_user_turns is None:
        return PreferenceDataset.concat(load_preferences(s, limit) for s in specs)
    kept = ([p for p in load_preferences(s) if user_turns(p) <= max_user_turns][:limit] for s in specs)
    return PreferenceDataset.concat(PreferenceDataset(pairs) for pairs in kept)


def check_disjoint_prompts(judge_data: list[str], eval_data: list[str], where: str) -> None:
    """Refuse a judge whose training data (`judge_data`, data specs) opens any conversation with the same first
    human turn as a pair of `eval_data`: it would judge replies to prompts it was trained on. `where` names the
    field or folder at fault in the one-line `ConfigError`."""
    shared = shared_first_turns(load_many(judge_data), load_many(eval_data))
    if shared:
        example = min(shared)
        raise ConfigError(f"{where}: the judge's training data {judge_data} shares {len(shared)} first human turn(s) "
                          f"with the evaluation prompts {eval_data}, e.g. {example[:80]!r}; train it on data held "
                          f"out from them, such as hh-helpful:test#judge against hh-helpful:test#eval")


def sample_per_source(specs: Iterable[str], per_source: int, seed: int, exclude: Iterable[str] = ()) -> PreferenceDataset:
    """`per_source` random pairs of each source label (all if fewer), sources in order of first
    appearance, reproducible by `seed`. With `exclude` (data specs), pairs that open with a first human turn found
    there are left out and each first turn is kept once, so the sample is held out from, say, a policy's training
    prompts, down to conversations that branch from the same question (`splits.first_turn_key`)."""
    import random

    seen = {first_turn_key(p.prompt) for p in load_many(exclude)} if exclude else None
    by_source: dict[str, list[PreferencePair]] = {}
    for pair in load_many(specs):
        if seen is not None:
            key = first_turn_key(pair.prompt)
            if key in seen:
                continue
            seen.add(key)
        by_source.setdefault(pair.source, []).append(pair)
    if not by_source:
        raise DataError(f"{list(specs)}: no prompt is left once those in {list(exclude)} are left out")
    rng = random.Random(seed)
    return PreferenceDataset([p for pairs in by_source.values() for p in rng.sample(pairs, min(per_source, len(pairs)))])
