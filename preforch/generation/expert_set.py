"""A set of per-objective experts on disk: one LoRA adapter per objective on one base model (what
`preforch train-experts` writes, and what the soups and mod kinds serve).

FOLDER/experts.json:
    {"base_model": "smollm2", "objectives": ["helpful", "harmless"], "method": "dpo",
     "experts": {"helpful": "experts/helpful", "harmless": "experts/harmless"},  # adapters, relative to this file
     "heldout_accuracy": {...}, ...}                               # anything else is a record of training
Each adapter folder is peft's `save_pretrained` (adapter_config.json + adapter_model.safetensors); its
`base_model_name_or_path` must be the set's base model, since experts combine only on the model they adapt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from preforch.errors import ConfigError, ObjectiveMismatchError
from preforch.io import atomic_write_json, read_json

EXPERTS_FILE = "experts.json"
ADAPTER_CONFIG = "adapter_config.json"


def _same_model(a: str, b: str) -> bool:
    """Whether two model references name one model: the same folder, or the same hub id / alias."""
    from preforch.models import resolve

    a, b = resolve(a), resolve(b)
    return os.path.samefile(a, b) if Path(a).exists() and Path(b).exists() else a == b


def _read_json(file: Path, what: str) -> dict:
    if not file.is_file():
        raise ConfigError(f"{file.parent}: no {file.name}: not {what}")
    data = read_json(file)
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a JSON object")
    return data


@dataclass(frozen=True)
class ExpertSet:
    """A checked experts folder. adapters[i] is the LoRA adapter of objectives[i]; adapter_configs[i] its config."""

    file: Path
    base_model: str
    objectives: tuple[str, ...]
    adapters: tuple[Path, ...]
    adapter_configs: tuple[dict, ...]
    method: str

    @property
    def names(self) -> tuple[str, ...]:
        """The peft adapter name of each expert once loaded (objective names may hold characters peft refuses)."""
        return tuple(f"expert{i}" for i in range(len(self.objectives)))

    @classmethod
    def read(cls, folder: str | Path) -> "ExpertSet":
        """Read and check FOLDER/experts.json and each adapter's config (no weights load): `ConfigError` naming
        the file and field for a missing or malformed one, or an adapter made for another base model;
        `ObjectiveMismatchError` when `experts` does not give one adapter per objective, in order."""
        file = Path(folder) / EXPERTS_FILE
        data = _read_json(file, "an experts folder (preforch train-experts makes one)")
        for name, kind in (("base_model", str), ("objectives", list), ("experts", dict)):
            if not isinstance(data.get(name), kind):
                raise ConfigError(f"{file}: field {name!r} missing or not a {kind.__name__}")
        objectives, experts = tuple(data["objectives"]), data["experts"]
        if not all(isinstance(v, str) for v in experts.values()):
            raise ConfigError(f"{file}: field 'experts' maps each objective to its adapter folder, got {experts}")
        if tuple(experts) != objectives:
            raise ObjectiveMismatchError(f"{file}: field 'experts' has adapters for {list(experts)}, but field "
                                         f"'objectives' is {list(objectives)}: one adapter per objective, in order")
        adapters = tuple(Path(folder) / experts[o] for o in objectives)  # an absolute path stays absolute
        configs = tuple(_read_json(a / ADAPTER_CONFIG, f"a peft adapter (expert {o!r} of {file})")
                        for o, a in zip(objectives, adapters))
        for o, a, config in zip(objectives, adapters, configs):
            base = config.get("base_model_name_or_path")
            if config.get("peft_type") != "LORA":
                raise ConfigError(f"{a / ADAPTER_CONFIG}: field 'peft_type' is {config.get('peft_type')!r}; experts "
                                  "are LoRA adapters")
            if not isinstance(base, str) or not _same_model(base, data["base_model"]):
                raise ConfigError(f"{a / ADAPTER_CONFIG}: field 'base_model_name_or_path' is {base!r}, but {file} "
                                  f"field 'base_model' is {data['base_model']!r}: experts combine only on the one "
                                  f"base model they were trained on (expert {o!r})")
        return cls(file, data["base_model"], objectives, adapters, configs, str(data.get("method", "")))

    def load(self, trust_remote_code: bool = False):
        """(peft model with every expert loaded as an adapter named `names[i]`, tokenizer); eval mode."""
        from peft import PeftModel

        from preforch.models import load_policy

        base, tokenizer = load_policy(self.base_model, trust_remote_code=trust_remote_code)
        model = PeftModel.from_pretrained(base, str(self.adapters[0]), adapter_name=self.names[0])
        for name, adapter in zip(self.names[1:], self.adapters[1:]):
            model.load_adapter(str(adapter), adapter_name=name)
        return model.eval(), tokenizer


def adapter_folder(objective: str) -> str:
    """Where train-experts saves the adapter of `objective`, relative to the experts folder."""
    return f"experts/{objective}"


def write_expert_set(folder: str | Path, base_model: str, objectives: Sequence[str], method: str,
                     adapters: Sequence[str] | None = None, **record) -> Path:
    """Write FOLDER/experts.json (atomically): adapters[i] (default `adapter_folder`) is the adapter of
    objectives[i], relative to the folder (or absolute); `record` adds JSON fields (accuracy, config)."""
    adapters = list(adapters or map(adapter_folder, objectives))
    file = Path(folder) / EXPERTS_FILE
    atomic_write_json(file, {"base_model": base_model, "objectives": list(objectives), "method": method,
                             "experts": dict(zip(objectives, adapters)), **record})
    return file
