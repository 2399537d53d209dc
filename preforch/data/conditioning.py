"""Weights in context (DESIGN.md section 1, paper Eq. 10-11): the one place a preference becomes prompt text.

Format: one tag line put in front of the text of the LAST user message,

    <preference helpful=0.80 harmless=0.20>\\n...user text...     (Pro-WiC: weights on the simplex)
    <scores helpful=+0.53 harmless=-1.20>\\n...user text...       (RiC: target normalised scores)
    <levels helpful=1 quality=4>\\n...user text...                (MOSLIM: requested intensity levels)

- `name=value` items separated by single spaces, objectives in the order given to `render`;
- two decimals; scores always carry a sign, so every value has a fixed shape;
- plain ASCII, so any tokenizer splits it into the same few pieces in every prompt;
- objective names match `[A-Za-z0-9_-]+` (no spaces, `=` or `>`).

Rendered weights sum to exactly 1.00: they are rounded to hundredths by largest remainder, so a vector like
(1/3, 1/3, 1/3) renders as 0.34/0.33/0.33, not as 0.33/0.33/0.33. `parse` accepts any order of the objectives
and weights whose sum is within 0.01 of 1 (hand-written tags such as 0.33/0.33/0.33), then renormalises them
exactly onto the simplex. Anything else is a `WeightsError` naming the problem.

Every tag may name a SUBSET of the objectives (at least one):
- levels: an objective left out is masked (MASKED, -1); named ones carry an integer level in 0 .. L_i - 1 (L_i:
  that head's level count).
- weights and scores: `render(..., named=mask)` leaves out the objectives that do not apply to the sample
  (DESIGN.md section 8: a chat reply is not tagged with an exact-match weight or score). Named weights sum to 1.
  `parse` gives a weights tag's unnamed objectives weight 0 (equivalent: the combined reward renormalises over
  the objectives that apply, where weight 0 and not applying both contribute nothing) and a scores tag's unnamed
  objectives NaN, no number standing for "not named" (`Scores.from_nan` turns it into the mask, as it does for
  TRL's None). Without `named` every objective is named, as a user's full preference at inference is.
"""

from __future__ import annotations

import math
import re
from typing import Literal, Sequence

import torch

from preforch.data.schema import Message, as_messages
from preforch.data.weights import check_simplex, parse_named_values
from preforch.errors import ConfigError, WeightsError

Kind = Literal["weights", "scores", "levels"]
TAGS: dict[str, str] = {"weights": "preference", "scores": "scores", "levels": "levels"}  # kind -> tag word
PARSE_SUM_TOL = 0.01
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_OPEN = re.compile(r"<(preference|scores|levels)\b")
MASKED = -1  # an objective a levels tag leaves out


def _check_names(objectives: Sequence[str]) -> None:
    bad = [o for o in objectives if not _NAME.fullmatch(o)]
    if bad:
        raise ConfigError(f"objective name(s) {bad} cannot go into a prompt tag: use letters, digits, '_' or '-'")
    if not objectives:
        raise ConfigError("no objectives to render")


def round_to_hundredths(weights: torch.Tensor) -> list[int]:
    """Weights [K] on the simplex -> K integers (hundredths) summing to 100, by largest remainder."""
    scaled = [float(w) * 100 for w in weights]
    units = [math.floor(s) for s in scaled]
    by_remainder = sorted(range(len(scaled)), key=lambda i: units[i] - scaled[i])  # largest remainder first
    for i in by_remainder[:100 - sum(units)]:
        units[i] += 1
    return units


def format_tag(values: torch.Tensor, objectives: Sequence[str], kind: Kind,
               num_levels: Sequence[int] | None = None, named: torch.Tensor | None = None) -> str:
    """The tag line (with its newline) for `values` [K]. Weights and scores name the objectives where `named` [K]
    bool is True (None: all; values elsewhere are not read), named weights checked to sum to 1, named scores to be
    finite; levels name those not MASKED, checked against `num_levels`."""
    _check_names(objectives)
    if kind == "levels":
        v = check_levels(values, objectives, num_levels, "rendered levels")
        items = [f"{o}={x}" for o, x in zip(objectives, v.tolist()) if x != MASKED]
    elif kind in ("weights", "scores"):
        v, named = _named_values(values, objectives, kind, named)
        names = [o for o, n in zip(objectives, named.tolist()) if n]
        if kind == "weights":
            w = check_simplex(v, objectives, "rendered weights")
            items = [f"{o}={u // 100}.{u % 100:02d}" for o, u in zip(names, round_to_hundredths(w[named]))]
        else:
            items = [f"{o}={x:+.2f}" for o, x in zip(names, v[named].tolist())]
    else:
        raise ConfigError(f"kind: expected 'weights', 'scores' or 'levels', got {kind!r}")
    return f"<{TAGS[kind]} {' '.join(items)}>\n"


def _named_values(values: torch.Tensor, objectives: Sequence[str], kind: Kind,
                  named: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(values [K] float with 0 where not named, named [K] bool), refusing a wrong shape, a tag naming nothing, and
    NaN or inf among the named values."""
    v = torch.as_tensor(values, dtype=torch.float32)
    named = torch.ones(v.shape, dtype=torch.bool) if named is None else torch.as_tensor(named, dtype=torch.bool)
    if v.shape != (len(objectives),) or named.shape != v.shape:
        raise WeightsError(f"rendered {kind}: expected {len(objectives)} {kind} for {list(objectives)} (one vector, "
                           f"and a mask of its shape), got shape {tuple(v.shape)}, mask {tuple(named.shape)}")
    if not named.any():
        raise WeightsError(f"rendered {kind}: name at least one objective of {list(objectives)}")
    if not torch.isfinite(v[named]).all():
        raise WeightsError(f"rendered {kind}: expected finite values for the objectives named, got "
                           f"{dict((o, x) for o, x, n in zip(objectives, v.tolist(), named.tolist()) if n)}")
    return torch.where(named, v, 0.0), named


def _last_user(messages: Sequence[Message]) -> int:
    return max(i for i, m in enumerate(messages) if m["role"] == "user")


def has_tag(messages: Sequence[Message]) -> bool:
    """Whether the last user message starts like a conditioning tag (well-formed or not)."""
    return bool(_OPEN.match(messages[_last_user(messages)]["content"]))


def render(messages: Sequence[Message], values: torch.Tensor, objectives: Sequence[str], kind: Kind,
           num_levels: Sequence[int] | None = None, named: torch.Tensor | None = None) -> tuple[Message, ...]:
    """A new prompt whose last user message starts with the tag of `values` [K] (`messages` is not changed);
    weights and scores name the objectives where `named` [K] bool is True (None: all), see `format_tag`.

    A prompt that already carries a tag is refused: two tags would make the conditioning ambiguous.
    """
    messages = as_messages(messages, "prompt to condition")
    if has_tag(messages):
        raise WeightsError("prompt already starts with a conditioning tag; strip it (parse) before rendering another")
    i = _last_user(messages)
    out = [dict(m) for m in messages]
    out[i]["content"] = format_tag(values, objectives, kind, num_levels, named) + out[i]["content"]
    return tuple(out)


def parse(messages_or_text: str | Sequence[Message], objectives: Sequence[str],
          num_levels: Sequence[int] | None = None) -> tuple[Kind, torch.Tensor, tuple[Message, ...]]:
    """Inverse of `render`: (kind, values [K] ordered like `objectives`, prompt without the tag).

    A string is taken as the text of a single user message. Weights are renormalised onto the simplex (the named
    ones must sum to within 0.01 of 1), 0 where not named; scores are returned as written, NaN where not named;
    levels as long, MASKED where not named, checked against `num_levels` when given.
    """
    messages = as_messages(messages_or_text, "conditioned prompt")
    i = _last_user(messages)
    text = messages[i]["content"]
    head = _OPEN.match(text)
    if not head:
        raise WeightsError(f"no conditioning tag: the last user message must start with <preference ...>, <scores ...> "
                           "or <levels ...>, "
                           f"got {text[:40]!r}")
    end = text.find(">\n")
    if end < 0 or "\n" in text[:end]:
        raise WeightsError(f"malformed conditioning tag {text.splitlines()[0][:80]!r}: expected '<{head[1]} name=value ...>' "
                           "followed by a newline")
    kind: Kind = {"preference": "weights", "scores": "scores", "levels": "levels"}[head[1]]
    values = _parse_items(text[head.end():end], objectives, kind, num_levels)
    stripped = [dict(m) for m in messages]
    stripped[i]["content"] = text[end + 2:]
    return kind, values, tuple(stripped)


def _parse_items(body: str, objectives: Sequence[str], kind: Kind, num_levels: Sequence[int] | None) -> torch.Tensor:
    found = parse_named_values(body.split(), objectives, "conditioning tag")
    if kind == "levels":
        if any(v != int(v) for v in found.values()):
            raise WeightsError(f"conditioning tag: levels must be whole numbers, got {found}")
        return check_levels([int(found.get(o, MASKED)) for o in objectives], objectives, num_levels, "conditioning tag")
    if not found:
        raise WeightsError(f"conditioning tag: name at least one objective of {list(objectives)}")
    if kind == "scores":
        return torch.tensor([found.get(o, math.nan) for o in objectives])
    v = torch.tensor([found.get(o, 0.0) for o in objectives])
    if (v < 0).any():
        raise WeightsError(f"conditioning tag: weights must be non-negative, got {found}")
    if abs(v.sum().item() - 1) > PARSE_SUM_TOL + 1e-6:  # 1e-6: float error of the decimal sum
        raise WeightsError(f"conditioning tag: weights must sum to 1 (within {PARSE_SUM_TOL}), got sum {v.sum().item():.4f}")
    return v / v.sum()


def ric_targets(weights: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """RiC's preference-to-reward mapping (Yang et al. 2024, Sec. 3): weights [K] or [B, K] -> target scores, same shape.

    With N = K objectives: target_i = high_i if w_i >= 1/N, else low_i + N * w_i * (high_i - low_i);
    low, high [K] are the ends of each objective's normalised-score range in the offline data.
    """
    w = torch.as_tensor(weights, dtype=torch.float32)
    check_simplex(w, range(w.shape[-1]), "RiC preference")
    low, high = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
    n = w.shape[-1]
    return torch.where(w >= 1 / n, high.expand_as(w), low + n * w * (high - low))


def check_levels(levels, objectives: Sequence[str], num_levels: Sequence[int] | None, where: str) -> torch.Tensor:
    """Requested levels [K] (MASKED for objectives left out) as long; a `WeightsError` starting with `where` for a
    wrong K, no objective named, or a level outside 0 .. num_levels[i] - 1 (unchecked when num_levels is None)."""
    v = torch.as_tensor(levels, dtype=torch.long)
    if v.shape != (len(objectives),):
        raise WeightsError(f"{where}: expected {len(objectives)} levels for {list(objectives)}, got {v.tolist()}")
    if (v == MASKED).all():
        raise WeightsError(f"{where}: name at least one objective of {list(objectives)}")
    for o, x, n in zip(objectives, v.tolist(), num_levels or [None] * len(objectives)):
        if x != MASKED and (x < 0 or (n is not None and x >= n)):
            top = f"{n - 1}" if n is not None else "..."
            raise WeightsError(f"{where}: level {x} of {o!r} is outside its range 0..{top}")
    return v


def levels_from_weights(weights: torch.Tensor, num_levels: Sequence[int]) -> torch.Tensor:
    """PRO + MOSLIM: a preference [K] or [B, K] on the simplex -> requested levels, same shape (long, MASKED = -1).

    An objective whose weight is at least its uniform share 1/K is asked for at its top level; the others are
    left out (masked), not asked for a low level: a small weight means "matters less", not "do the opposite".
    The largest weight is always named, so every row asks for something (uniform weights name every objective).
    """
    w = torch.as_tensor(weights, dtype=torch.float32)
    check_simplex(w, range(w.shape[-1]), "MOSLIM preference")
    top = torch.tensor(num_levels, dtype=torch.long) - 1
    named = (w >= 1 / w.shape[-1] - 1e-6) | (w == w.max(-1, keepdim=True).values)
    return torch.where(named, top.expand_as(w), torch.full_like(top.expand_as(w), MASKED))
