"""The one table of weights-in-context methods (`train-wic --method`): name -> "module:Class", imported when used
(like alignment/methods.py's METHODS for `train-policy`). A WiC method says two things, and its class says them:
what each training sample's tag holds, given the scores the sample obtained (`labels`), and what a user's
preference becomes in the prompt at inference (`prompt_values`). The table sits here, below training and serving,
because both read it: `train-wic` labels its samples by it, and the wic kind conditions prompts by it (through
the policy's `wic.json`, which names its method). A new WiC method is one class and one row.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from preforch.data.conditioning import ric_targets
from preforch.orchestrator.targets import implicit_preference_weights
from preforch.rewards.scores import Scores, as_scores
from preforch.tables import check_row, load_row

WIC_METHODS: dict[str, str] = {
    "pro-wic": "preforch.generation.wic_methods:ProWic",
    "ric": "preforch.generation.wic_methods:Ric",
}


def check_wic_method(name: str, where: str) -> str:
    """`name` if it is a registered WiC method, else a `ConfigError` starting with `where` that lists them."""
    return check_row(WIC_METHODS, name, where)


def wic_method(name: str, where: str = "method") -> type["WicMethod"]:
    """The class implementing WiC method `name` (see `check_wic_method` for the error)."""
    return load_row(WIC_METHODS, name, where)


class WicMethod:
    """What a row's class declares; the stages, the spec and the serving kind are shared. Not instantiated."""

    # what the prompt's tag holds (preforch.data.conditioning's kinds): "weights" (<preference ...>) or "scores"
    tag: ClassVar[str]
    # train-wic --stage online's preference source when --preference_source is not given
    preference_source: ClassVar[str]

    @classmethod
    def labels(cls, normalized: Scores, tau: float) -> Scores:
        """A training sample's conditioning values from its normalised scores, over the objectives that apply to
        it (the ones its tag names). [N, K] -> Scores [N, K]."""
        raise NotImplementedError

    @classmethod
    def prompt_values(cls, preferences: torch.Tensor, spec) -> torch.Tensor:
        """What goes into the prompt for a user's preferences [P, K] (on the simplex) -> [P, K]; `spec` is the
        policy's `WicSpec` (its objectives' offline score ranges)."""
        raise NotImplementedError


def self_weights(normalized: Scores | torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 10: w = softmax(r~(x, y) / tau) over the objectives that apply, the preference a reply fulfils.
    normalized [N, K] -> [N, K] on the simplex, 0 on the objectives that do not apply.

    The same map as the orchestrator's targets (Eq. 7), applied to any sample rather than the chosen reply.
    """
    return implicit_preference_weights(normalized, tau)


class ProWic(WicMethod):
    """Pro-WiC (PRO Eq. 10-11): a sample is tagged with its self-weights, a preference with itself."""

    tag = "weights"
    preference_source = "orchestrator"

    @classmethod
    def labels(cls, normalized: Scores, tau: float) -> Scores:
        s = as_scores(normalized)
        return Scores(self_weights(s, tau), s.applies)

    @classmethod
    def prompt_values(cls, preferences: torch.Tensor, spec) -> torch.Tensor:
        return preferences


class Ric(WicMethod):
    """RiC (Yang et al. 2024): a sample is tagged with its normalised scores; a preference becomes target scores
    on each objective's offline range (`ric_targets`)."""

    tag = "scores"
    preference_source = "random"

    @classmethod
    def labels(cls, normalized: Scores, tau: float) -> Scores:
        return as_scores(normalized)

    @classmethod
    def prompt_values(cls, preferences: torch.Tensor, spec) -> torch.Tensor:
        return ric_targets(preferences, torch.tensor(spec.score_low), torch.tensor(spec.score_high))
