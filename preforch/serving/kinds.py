"""The one table of preference-policy kinds: name -> "module:Class", imported when used (like the CLI's
COMMANDS). A new way to serve a preference is one module under preforch/serving/ and one row here. The rows'
order is the precedence by which a folder without preference_policy.json is given the kind of a marker file
it holds (`marked_kind`)."""

from __future__ import annotations

from pathlib import Path

from preforch.errors import ConfigError
from preforch.tables import load_attr

KINDS: dict[str, str] = {
    "plain": "preforch.serving.plain:PlainPolicy",
    "best-of-n": "preforch.serving.best_of_n:BestOfNPolicy",
    "wic": "preforch.serving.wic:WicPolicy",
    "soups": "preforch.serving.soups:SoupsPolicy",
    "mod": "preforch.serving.mod:ModPolicy",
    "moslim": "preforch.serving.moslim:MoslimPolicy",
    "mahalo": "preforch.serving.mahalo:MahaloPolicy",
}


def check_kind(name: str, where: str) -> str:
    """`name` if it is a registered kind, else a `ConfigError` starting with `where` that lists them."""
    if name not in KINDS:
        raise ConfigError(f"{where}: unknown kind {name!r}; registered kinds: {', '.join(KINDS)}")
    return name


def kind_class(name: str, where: str) -> type:
    """The class implementing kind `name` (see `check_kind` for the error)."""
    return load_attr(KINDS[check_kind(name, where)])


def marked_kind(folder: Path) -> str | None:
    """The first kind in KINDS whose class's `marker_file` is in `folder`, None for none (or no folder: a hub
    id is not asked). Kind modules are imported only here, when a folder's kind has to be inferred."""
    if not folder.is_dir():
        return None
    for name in KINDS:
        marker = kind_class(name, "KINDS").marker_file
        if marker is not None and (folder / marker).is_file():
            return name
    return None
