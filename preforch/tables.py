"""The project's tables (the CLI's commands, train-policy's methods, serving's kinds, the reward sources) name what
a row runs as "module:Attr", imported only when the row is used, so listing a table loads none of its rows."""

from __future__ import annotations

import importlib


def load_attr(ref: str):
    """The attribute `ref` names as "package.module:Attr", its module imported now (Python's ImportError or
    AttributeError when it is not there)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
