"""Atomic writes: a crash or bad input never leaves a half-written artifact where a good one was."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from preforch.errors import ConfigError, DataError, PreforchError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8; gzip-compressed when `path` ends in .gz, as `read_text` reads it) atomically."""
    import gzip

    data = text.encode("utf-8")
    atomic_write_bytes(path, gzip.compress(data, mtime=0) if Path(path).suffix == ".gz" else data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder beside `path`; on success it replaces `path` whole, on error it is removed.

    Used for saving models: a reader sees either the old complete folder or the new complete one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the final folder should look like any other
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_text(path: str | os.PathLike, error: type[PreforchError] = DataError) -> str:
    """The UTF-8 text of `path` (gzip-compressed when it ends in .gz); `error` naming the file and line of the
    first byte that is not UTF-8, rather than a bare UnicodeDecodeError."""
    import gzip

    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as UTF-8") from None


def read_json(path: str | os.PathLike, error: type[PreforchError] = ConfigError) -> Any:
    """The JSON value in `path`; `error` naming the file and line for text that is not UTF-8 or not JSON."""
    try:
        return json.loads(read_text(path, error))
    except json.JSONDecodeError as e:
        raise error(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None


def read_jsonl(path: str | os.PathLike, error: type[PreforchError] = DataError) -> Iterator[tuple[str, Any]]:
    """("file:line", value) for each non-blank line of a JSON-lines file; `error` naming the file and line for
    text that is not UTF-8 or a line that is not JSON."""
    for lineno, line in enumerate(read_text(path, error).split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None


def check_safetensors(path: str | os.PathLike) -> None:
    """`ConfigError` naming `path` unless it is a whole safetensors file (its header read and its data covering
    the file: an interrupted copy or download fails here)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt"):
            pass
    except (SafetensorError, OSError) as e:
        raise ConfigError(f"{path}: corrupt or truncated safetensors file ({e}); save or copy it again") from None


def load_safetensors(path: str | os.PathLike) -> dict:
    """The tensors in `path` by name, after `check_safetensors`."""
    from safetensors.torch import load_file

    check_safetensors(path)
    return load_file(str(path))
