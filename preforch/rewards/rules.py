"""Rule-based (verifiable) reward functions in TRL's reward-function signature:
`fn(prompts=..., completions=..., **kwargs) -> list[float | None]`, one score per completion.

`RuleReward` calls rules exactly as TRL's GRPOTrainer calls `reward_funcs` on a conversational dataset
(prompts as message lists, each completion as `[{"role": "assistant", "content": text}]`), so a TRL reward
function (e.g. `trl.rewards:think_format_reward`) works unchanged as a rule. The built-ins accept TRL's
standard (plain string) format as well. Each is a plain module-level function, so it pickles and its
`__name__` names the objective. Users add their own by passing `module:function` wherever a rule is named.
"""

from __future__ import annotations

import math
from typing import Callable

from preforch.data.arithmetic import exact_match, text_of
from preforch.errors import ConfigError
from preforch.tables import load_attr

# TRL's reward-function signature: keyword arguments in, one score (or None: not applicable) per completion out
RuleFn = Callable[..., list]


def conciseness(prompts=None, completions=(), **kwargs) -> list[float]:
    """-log(1 + number of words): shorter is better, with diminishing returns for very short replies."""
    return [-math.log1p(len(text_of(c).split())) for c in completions]


def no_refusal(prompts=None, completions=(), **kwargs) -> list[float]:
    """1.0 unless the response opens with a stock refusal phrase (a crude, verifiable engagement check)."""
    starts = ("i'm sorry", "i am sorry", "i can't", "i cannot", "i won't", "sorry,", "as an ai")
    return [0.0 if text_of(c).strip().lower().startswith(starts) else 1.0 for c in completions]


# exact_match: the verifiable objective, 1.0 for a right final answer to a bundled arithmetic problem
BUILTIN_RULES: dict[str, RuleFn] = {f.__name__: f for f in (conciseness, no_refusal, exact_match)}


def resolve_rule(name: str) -> RuleFn:
    """A built-in rule by name, or a user function given as `package.module:function`."""
    if name in BUILTIN_RULES:
        return BUILTIN_RULES[name]
    if ":" not in name:
        raise ConfigError(f"unknown rule {name!r}: built-ins are {sorted(BUILTIN_RULES)}, or give 'module:function'")
    try:
        fn = load_attr(name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"rule {name!r} cannot be imported: {e}") from None
    if not callable(fn):
        raise ConfigError(f"rule {name!r} is not callable")
    return fn
