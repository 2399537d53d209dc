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
    parser.add_argument("--config", default=None, help="YAML recipe whose keys are these options, each value of its "
                        "option's type (a list option also takes one bare value)")
    for action in parser._actions:  # a list option given with no values is the empty list (`--rules`: no rules)
        if action.nargs == "+":
            action.nargs = "*"
    first = fields(cls)[0]
    positional = []
    while argv and not argv[0].startswith("-"):
        positional.append(argv.pop(0))
    if positional:
        argv = [f"--{first.name}", *positional, *argv]
    argv, trl = _trl_flags(argv)
    if trl and "trl" not in {f.name for f in fields(cls)}:
        raise ConfigError(f"--trl.{next(iter(trl))}: this command passes nothing to a TRL trainer")
    known, _ = parser.parse_known_args(argv)
    recipe = load_yaml(known.config, cls) if known.config else {}
    if not isinstance(recipe.get("trl", {}), dict):
        raise ConfigError(f"{known.config}: 'trl' must be a mapping of TRL config fields to values")
    if trl:  # flags override the recipe's block field by field
        recipe["trl"] = {**recipe.get("trl", {}), **trl}
    if recipe:
        parser.set_defaults(**recipe)
    try:
        return parser.parse_args_into_dataclasses(argv)[0]
    except ValueError as e:  # raised by the dataclass __post_init__ checks
        raise ConfigError(str(e)) from None


def _trl_flags(argv: list[str]) -> tuple[list[str], dict]:
    """(argv without its --trl.FIELD VALUE / --trl.FIELD=VALUE flags, {FIELD: VALUE}); each VALUE is read as YAML,
    so numbers, booleans and lists arrive typed (--trl.loss_type dr_grpo, --trl.scale_rewards false)."""
    import yaml

    rest, trl, i = [], {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--trl."):
            name, eq, value = arg[len("--trl."):].partition("=")
            if not eq:
                if i + 1 >= len(argv):
                    raise ConfigError(f"{arg}: expected a value")
                value, i = argv[i + 1], i + 1
            trl[name] = yaml.safe_load(value)
        else:
            rest.append(arg)
        i += 1
    return rest, trl
