"""Per-prompt preference weights for every command: the user's `--weights`, the orchestrator's f_phi(x), or a
partial spec (`harmless=0.5,auto`) whose free objectives the orchestrator fills.

Commands load and check an orchestrator here, once, and always read it through `predict` (which applies
whatever the saved orchestrator defines, e.g. a calibrated temperature).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from preforch.data.schema import Message
from preforch.data.weights import check_simplex, fill_preference, parse_preference
from preforch.errors import ConfigError
from preforch.rewards.ensemble import check_objectives

if TYPE_CHECKING:
    from preforch.orchestrator.model import PreferenceOrchestrator


def load_orchestrator(path: str | Path, objectives: Sequence[str]) -> "PreferenceOrchestrator":
    """The orchestrator saved in `path`; `ObjectiveMismatchError` unless it predicts `objectives`, in order."""
    from preforch.orchestrator.model import PreferenceOrchestrator

    model = PreferenceOrchestrator.from_pretrained(path)
    check_objectives(objectives, model.objectives, f"orchestrator {path}")
    return model


def preference_weights(spec: str | None, prompts: Sequence[Sequence[Message]], objectives: Sequence[str],
                       orchestrator: "str | Path | PreferenceOrchestrator | None") -> torch.Tensor:
    """Weights [P, K] for P prompts, rows on the simplex over the K `objectives`.

    `spec` is a `--weights` string: without `auto` its vector is used for every prompt and the orchestrator is
    not loaded; with `auto` (or `spec` None: everything from the orchestrator) the orchestrator's weights fill
    the objectives left free (`fill_preference`). `orchestrator` is a folder (loaded and checked here) or a
    model from `load_orchestrator`; `ConfigError` naming `--orchestrator DIR` when one is needed and none is given.
    """
    partial = parse_preference(spec, objectives) if spec is not None else None
    if partial is not None and not partial.auto:
        return partial.fixed_vector(objectives).expand(len(prompts), -1).clone()
    if orchestrator is None or orchestrator == "":  # an empty flag (--orchestrator '') means none
        raise ConfigError(f"--weights {spec}: 'auto' fills from the orchestrator; add --orchestrator DIR" if spec
                          else "no weights: give --weights name=value,... or --orchestrator DIR")
    if isinstance(orchestrator, (str, Path)):
        orchestrator = load_orchestrator(orchestrator, objectives)
    predicted = orchestrator.predict(prompts)
    if partial is None:
        return check_simplex(predicted, objectives, "orchestrator output")
    return fill_preference(partial, predicted, objectives)
