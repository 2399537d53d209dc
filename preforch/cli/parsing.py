"""Dataclass -> argparse flags (HfArgumentParser), with `--config recipe.yaml` as defaults."""

from __future__ import annotations

from dataclasses import fields

from preforch.config import load_yaml
from preforch.errors import ConfigError


def parse_config(cls, argv: list[str], prog: str, description: str = ""):
    """Parse `argv` into an instance of `cls`: YAML values (if `--config`) < command-line flags.

    A leading positional argument fills the first list field (e.g. `preforch weights "a prompt"`).
    """
    from transformers import HfArgumentParser

    parser = HfArgumentParser(cls, prog=prog, description=description)
    parser.add_argument("--config", default=None, help="YAML recipe whose keys are these options")
    for action in parser._actions:  # a list option given with no values is the empty list (`--rules`: no rules)
        if action.nargs == "+":
            action.nargs = "*"
    first = fields(cls)[0]
    positional = []
    while argv and not argv[0].startswith("-"):
        positional.append(argv.pop(0))
    if positional:
        argv = [f"--{first.name}", *positional, *argv]
    known, _ = parser.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**load_yaml(known.config, cls))
    try:
        return parser.parse_args_into_dataclasses(argv)[0]
    except ValueError as e:  # raised by the dataclass __post_init__ checks
        raise ConfigError(str(e)) from None
