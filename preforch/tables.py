"""The project's tables (the CLI's commands, train-policy's methods, serving's kinds, the reward sources) name what
a row runs as "module:Attr", imported only when the row is used, so listing a table loads none of its rows."""

from __future__ import annotations

import importlib
from typing import Mapping

from preforch.errors import ConfigError


def load_attr(ref: str):
    """The attribute `ref` names as "package.module:Attr", its module imported now (Python's ImportError or
    AttributeError when it is not there)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def check_row(table: Mapping[str, str], name: str, where: str) -> str:
    """`name` if it is a row of `table`, else a `ConfigError` starting with `where` that lists the rows."""
    if name not in table:
        raise ConfigError(f"{where}: expected one of {', '.join(table)}, got {name!r}")
    return name


def load_row(table: Mapping[str, str], name: str, where: str):
    """What row `name` of `table` names, imported now (see `check_row` for the error)."""
    return load_attr(table[check_row(table, name, where)])
