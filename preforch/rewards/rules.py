"""Rule-based (verifiable) reward functions: `fn(prompts, responses) -> list[float]`, one per response.

Each is a plain module-level function, so it pickles and its `__name__` names the objective (TRL's
reward-function convention). Users add their own by passing `module:function` wherever a rule is named.
"""

from __future__ import annotations

import importlib
import math
from typing import Callable, Sequence

from preforch.data.arithmetic import exact_match
from preforch.errors import ConfigError

RuleFn = Callable[[Sequence[str], Sequence[str]], list[float]]


def conciseness(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """-log(1 + number of words): shorter is better, with diminishing returns for very short replies."""
    return [-math.log1p(len(r.split())) for r in responses]


def no_refusal(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """1.0 unless the response opens with a stock refusal phrase (a crude, verifiable engagement check)."""
    starts = ("i'm sorry", "i am sorry", "i can't", "i cannot", "i won't", "sorry,", "as an ai")
    return [0.0 if r.strip().lower().startswith(starts) else 1.0 for r in responses]


# exact_match: the verifiable objective, 1.0 for a right final answer to a bundled arithmetic problem
BUILTIN_RULES: dict[str, RuleFn] = {f.__name__: f for f in (conciseness, no_refusal, exact_match)}


def resolve_rule(name: str) -> RuleFn:
    """A built-in rule by name, or a user function given as `package.module:function`."""
    if name in BUILTIN_RULES:
        return BUILTIN_RULES[name]
    module, sep, attr = name.partition(":")
    if not sep:
        raise ConfigError(f"unknown rule {name!r}: built-ins are {sorted(BUILTIN_RULES)}, or give 'module:function'")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"rule {name!r} cannot be imported: {e}") from None
    if not callable(fn):
        raise ConfigError(f"rule {name!r} is not callable")
    return fn
