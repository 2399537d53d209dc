"""A preference policy on disk: a folder whose `preference_policy.json` names its kind and settings, e.g.
`{"kind": "best-of-n", "policy": "smollm2", "ensemble": "runs/rewards", "num_candidates": 4}`.

Folders without the file keep working: a train-wic folder (it has `wic.json`) is a `wic` policy, a train-experts
folder (`experts.json`) a `soups` policy, a train-policy --method moslim folder (`moslim.json`) a `moslim` policy,
a train-mahalo folder (`mahalo.json`) a `mahalo` policy; any other model folder, hub id or alias serves as the
caller's default kind, with the caller's settings.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from preforch.errors import ConfigError
from preforch.generation.sampling import SamplingConfig
from preforch.io import atomic_write_json, read_json
from preforch.serving.policies.kinds import DEFAULT_KIND, kind_class, marked_kind
from preforch.serving.policies.policy import LoadOptions, PreferencePolicy

if TYPE_CHECKING:
    from preforch.rewards.ensemble import RewardEnsemble

POLICY_FILE = "preference_policy.json"


@dataclass(frozen=True)
class Stored:
    """What a folder says about itself: its kind (None: not said), settings (paths made absolute), and the
    preference_policy.json they were read from (None: inferred)."""

    kind: str | None
    settings: dict[str, Any]
    file: Path | None = None

    @property
    def where(self) -> str:
        """What an error about the kind or a setting names: the file, or the `method` that chose the kind."""
        return str(self.file) if self.file else "method"


def _path_fields(settings_class: type) -> set[str]:
    return {f.name for f in fields(settings_class) if f.metadata.get("path")}


def read_folder(source: str, options: LoadOptions) -> Stored:
    """The kind and settings of `source`: from its preference_policy.json unless that file is being read
    already (`options.opened`), else inferred: the first kind in KINDS whose `marker_file` the folder holds (wic
    for wic.json, soups for experts.json, moslim for moslim.json, mahalo for mahalo.json), no kind otherwise."""
    from preforch.models import resolve

    folder = Path(resolve(source))
    file = folder / POLICY_FILE
    if not file.is_file() or any(os.path.samefile(folder, o) for o in options.opened):
        return Stored(marked_kind(folder), {"policy": source})
    data = read_json(file)
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ConfigError(f"{file}: field 'kind' missing: name the policy's kind, e.g. {{\"kind\": \"plain\", ...}}")
    kind = data.pop("kind")
    paths = _path_fields(kind_class(kind, f"{file}: field 'kind'").Settings)
    for name in paths & set(data):  # relative to the file when it names something there
        if isinstance(data[name], str) and not Path(data[name]).is_absolute() and (folder / data[name]).exists():
            data[name] = os.path.normpath(folder / data[name])
    return Stored(kind, data, file)


def build_settings(cls: type, values: dict[str, Any], where: str):
    """`cls.Settings(**values)`; a `ConfigError` naming `where` and the field for an unknown or missing one."""
    known = {f.name: f for f in fields(cls.Settings)}
    for name in values:
        if name not in known:
            raise ConfigError(f"{where}: field {name!r} is not a setting of kind {cls.kind!r} (its settings: "
                              f"{', '.join(known)})")
    for name, f in known.items():
        if name not in values and f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{where}: field {name!r} missing (kind {cls.kind!r} needs {name})")
    try:
        return cls.Settings(**values)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_preference_policy(source: str, method: str | None = None, *, default_kind: str = "plain",
                           objectives: Sequence[str] | None = None, options: LoadOptions | None = None,
                           **settings) -> PreferencePolicy:
    """The policy in `source` (a folder, hub id or bundled alias) as a `PreferencePolicy`.

    Its kind: the folder's preference_policy.json, else `method`, else wic for a train-wic folder, else
    `default_kind`; `method` contradicting the file is a `ConfigError`. `settings` override the file's (None
    values, and settings the kind does not take, are passed over: evaluate and generate give every kind the
    same ones). `objectives`, those the caller weights, fill a kind's `objectives` setting where the folder
    gives none, and must match the policy's (`ObjectiveMismatchError`).
    """
    from preforch.rewards.ensemble import check_objectives

    options = options or LoadOptions()
    stored = read_folder(source, options)
    if stored.file:
        if method is not None and method != stored.kind:
            raise ConfigError(f"{stored.file}: kind {stored.kind!r}, but method {method!r} was asked for")
        options = replace(options, opened=(*options.opened, str(stored.file.parent)))
        kind = stored.kind
    else:
        kind = method or stored.kind or default_kind
    cls = kind_class(kind, stored.where)
    takes = {f.name for f in fields(cls.Settings)}
    given = {k: v for k, v in settings.items() if v is not None and k in takes}
    if objectives is not None and "objectives" in takes and "objectives" not in stored.settings:
        given["objectives"] = tuple(objectives)
    policy = cls(build_settings(cls, {**stored.settings, **given}, stored.where), options)
    if objectives is not None:
        check_objectives(objectives, policy.objectives, f"{kind} policy {source}")
    return policy


def save_preference_policy(policy: PreferencePolicy, folder: str | Path) -> Path:
    """Write folder/preference_policy.json (atomically): the policy's kind and settings, paths to things inside
    `folder` relative to it, other local paths absolute, hub ids and aliases as they are."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = policy.describe()
    for name in _path_fields(type(policy.settings)):
        if Path(data[name]).exists():
            path = Path(data[name]).resolve()
            data[name] = str(path.relative_to(folder.resolve())) if path.is_relative_to(folder.resolve()) else str(path)
    file = folder / POLICY_FILE
    atomic_write_json(file, data)
    return file


def served_policy(cfg, ensemble: "RewardEnsemble") -> tuple[PreferencePolicy, SamplingConfig]:
    """What `generate` and `evaluate` serve: `cfg.policy` as `cfg.method` (default best-of-n for a bare model),
    reranking with the loaded `ensemble` (`cfg.ensemble`) where it reranks, and the sampling for one reply per
    prompt; `cfg` is a GenerateConfig or EvaluateConfig. Refuses sampling the policy cannot answer with."""
    policy = load_preference_policy(cfg.policy, cfg.method, default_kind=DEFAULT_KIND, objectives=ensemble.objectives,
                                    options=LoadOptions(cfg.trust_remote_code, {cfg.ensemble: ensemble}),
                                    ensemble=cfg.ensemble, num_candidates=cfg.num_candidates)
    sampling = SamplingConfig(1, cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.batch_size, cfg.seed)
    policy.check_sampling(sampling)
    return policy, sampling
