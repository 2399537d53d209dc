"""One config schema for Python, CLI flags and YAML recipes: what every command's config shares.

Each command has a dataclass beside its stage (`preforch/<stage>/config.py`); `preforch.cli` turns its fields into
`--flags` with HfArgumentParser and `--config recipe.yaml` sets defaults that flags then override (TRL's TrlParser
pattern). This module holds the base of the training runs' configs, the field helpers (`option`, `list_option`, ...) and
validators (`check_positive`, `check_one_of`, ...) every stage's config uses, and `load_yaml`; it imports no
stage, so every stage may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from preforch.errors import ConfigError

HH_TRAIN = ["hh-helpful:train", "hh-harmless:train"]
HH_TEST = ["hh-helpful:test", "hh-harmless:test"]


def trl_option(trainer: str):
    """The `trl` field of a run whose trainer is TRL's `trainer` config: any of its fields, passed straight to it."""
    return field(default_factory=dict, metadata={"help": (
        f"any field of TRL's {trainer} config, passed straight to it (refused by name if TRL has no such field): "
        "a `trl:` mapping in a recipe, or --trl.FIELD VALUE on the command line (e.g. --trl.gradient_accumulation_steps 4)")})


TRACKERS = ("none", "tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "clearml", "dvclive", "aim", "swanlab")


def check_trackers(cfg) -> None:
    """report_to: 'none' or comma-separated trackers accelerate knows, each checked by name."""
    unknown = [t for t in cfg.report_to.split(",") if t not in TRACKERS]
    if unknown:
        raise ConfigError(f"report_to: unknown tracker(s) {unknown}; expected none or any of {', '.join(TRACKERS[1:])}")


def check_hub(cfg) -> None:
    """push_to_hub needs hub_model_id."""
    if cfg.push_to_hub and not cfg.hub_model_id:
        raise ConfigError("push_to_hub: needs hub_model_id (e.g. your-name/preforch-reward-model)")


def _report_to():
    return field(default="none", metadata={"help": "experiment trackers (accelerate's): none | tensorboard | wandb | "
                                                   "trackio | ..., several comma-separated; local ones write to <output_dir>_logs "
                                                   "(train-mahalo: OUTPUT_DIR/training)"})


def hub_options():
    """(push_to_hub, hub_model_id) fields, to unpack into a config that uploads what it trains."""
    return (field(default=False, metadata={"help": "upload the trained folder (weights, config.json, model card) to the "
                                                    "Hugging Face Hub as --hub_model_id"}),
            field(default=None, metadata={"help": "Hub repo for --push_to_hub, e.g. your-name/preforch-reward-model"}))


def list_option(default: list[str], help: str):
    """A list field (a flag taking several values) with `help`; each instance gets its own copy of `default`."""
    return field(default_factory=lambda: list(default), metadata={"help": help})


def option(default, help: str):
    """A config field (a --flag) with `default` and `help` (what --help prints)."""
    return field(default=default, metadata={"help": help})


@dataclass(kw_only=True)
class RunConfig:
    """The fields every training run repeats. A subclass redeclares one where its default or help differs (each run
    names its own output_dir); decorate subclasses with `run_config`, which keeps their --help in their own order."""

    output_dir: str = field(metadata={"help": "where the run is saved"})
    seed: int = option(0, "random seed")
    report_to: str = _report_to()
    trust_remote_code: bool = option(False, "allow custom model code from the hub")


def run_config(cls):
    """`@dataclass` for a `RunConfig` subclass that lists its fields (--help, the positional first field, asdict) in
    the order its class body declares them, after its parent config's and before RunConfig's fields it does not
    redeclare: dataclass inheritance alone would list every base field first."""
    cls = dataclass(cls)
    parent = cls.__mro__[1]
    inherited = [] if parent is RunConfig else [f.name for f in fields(parent)]
    order = dict.fromkeys([*inherited, *vars(cls).get("__annotations__", {}), *(f.name for f in fields(RunConfig))])
    cls.__dataclass_fields__ = {name: cls.__dataclass_fields__[name] for name in order}
    return cls


def parse_objective_data(field_name: str, specs: list[str]) -> dict[str, str]:
    """objective -> data spec of `objective=data` entries; a malformed one is an error naming the field."""
    out = {}
    for spec in specs:
        objective, sep, data = spec.partition("=")
        if not (sep and objective and data):
            raise ConfigError(f"{field_name}: expected objective=data, got {spec!r}")
        out[objective] = data
    return out


def check_same_length(cfg, a: str, b: str) -> None:
    """List field `b` has one entry per entry of `a` (per objective)."""
    if len(getattr(cfg, a)) != len(getattr(cfg, b)):
        raise ConfigError(f"{b}: needs one entry per objective ({len(getattr(cfg, a))} in {a}), got {len(getattr(cfg, b))}")


def check_one_of(cfg, name: str, allowed: tuple[str, ...]) -> None:
    """Field `name` is one of `allowed`."""
    if getattr(cfg, name) not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {getattr(cfg, name)!r}")


def check_positive(cfg, *names: str) -> None:
    """Each named field > 0 (an optional one left at None passes)."""
    for n in names:
        if getattr(cfg, n) is not None and not getattr(cfg, n) > 0:
            raise ConfigError(f"{n}: must be > 0, got {getattr(cfg, n)!r}")


def check_non_negative(cfg, *names: str) -> None:
    """Each named field >= 0."""
    for n in names:
        if not getattr(cfg, n) >= 0:
            raise ConfigError(f"{n}: must be >= 0, got {getattr(cfg, n)!r}")


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def typed_value(value, hint, where: str, loose_str: bool = False):
    """`value` (read from YAML) as the type `hint` of the field it sets, or a `ConfigError` naming `where`, the same
    check flags get from argparse. Optional[X] takes null; list[X] takes a list, or one bare value as a list of one;
    int refuses 2.7 and true; str refuses numbers (quote them) unless `loose_str` (TRL declares `str` for fields that
    also take true / false); a Union or Literal takes what one of its members takes; other types (dict, Any) pass
    unchecked."""
    from typing import Literal, Union, get_args, get_origin

    origin, args = get_origin(hint), get_args(hint)
    if origin is Union or type(hint).__name__ == "UnionType":
        if value is None and type(None) in args:
            return None
        for member in (a for a in args if a is not type(None)):
            try:
                return typed_value(value, member, where, loose_str)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected one of {[getattr(a, '__name__', str(a)) for a in args]}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        items = value if isinstance(value, (list, tuple)) else [value]
        return [typed_value(v, args[0] if args else str, f"{where}[{i}]", loose_str) for i, v in enumerate(items)]
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str)}.get(hint)
    if hint is str and loose_str and isinstance(value, (bool, int, float)):
        return value
    if ok is None:
        return value
    if not ok:
        raise ConfigError(f"{where}: expected {_KINDS[hint]}, got {value!r}")
    return hint(value)


def typed_fields(cls, data: dict, where: str, loose_str: bool = False) -> dict:
    """Every value of `data` converted to the type of `cls`'s field of that name (`typed_value`)."""
    from typing import get_type_hints

    hints = get_type_hints(cls)
    return {key: typed_value(value, hints.get(key), f"{where}{key}", loose_str) for key, value in data.items()}


def load_yaml(path: str | Path, cls) -> dict:
    """Read a YAML recipe section for `cls`; unknown keys, and values of the wrong type, are errors naming the file
    and key."""
    import yaml

    from preforch.io import read_text

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; --config takes a YAML recipe file")
    try:
        data = yaml.safe_load(read_text(path, ConfigError)) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {unknown} for {cls.__name__}")
    return typed_fields(cls, data, f"{path}: ")
