"""The one table of preference-policy kinds: name -> "module:Class", imported when used (like the CLI's
COMMANDS). A new way to serve a preference is one module in this folder (preforch/serving/policies/) and one row
here. The rows' order is the precedence by which a folder without preference_policy.json is given the kind of a
marker file it holds (`marked_kind`)."""

from __future__ import annotations

from pathlib import Path

from preforch.errors import ConfigError
from preforch.tables import load_attr

DEFAULT_KIND = "best-of-n"  # how generate and evaluate serve a bare model folder

KINDS: dict[str, str] = {
    "plain": "preforch.serving.policies.plain:PlainPolicy",
    "best-of-n": "preforch.serving.policies.best_of_n:BestOfNPolicy",
    "wic": "preforch.serving.policies.wic:WicPolicy",
    "soups": "preforch.serving.policies.soups:SoupsPolicy",
    "mod": "preforch.serving.policies.mod:ModPolicy",
    "moslim": "preforch.serving.policies.moslim:MoslimPolicy",
    "mahalo": "preforch.serving.policies.mahalo:MahaloPolicy",
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
