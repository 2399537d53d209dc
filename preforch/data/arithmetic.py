"""The verifiable objective: templated arithmetic word problems with an exact-answer checker, seeded.

A problem is a chat prompt asking for the answer on a last line `Answer: N`; `check` reads the last integer of a
reply (after `Answer:` when there is one) and compares it exactly. The same checker scores training pairs,
guides decoding and judges evaluation, so they cannot drift apart.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from preforch.data.schema import Message, text_of
from preforch.errors import ConfigError

NAMES = ("Ana", "Ben", "Chloe", "Dev", "Eli", "Fay", "Gus", "Hana")
ITEMS = ("apples", "books", "coins", "marbles", "pencils", "stickers")

# Per level: the instruction ending every prompt, and (template, answer) over drawn a, b, c. SmolLM2-135M-Instruct
# samples (temperature 1, 4 per problem) got two-step problems right 0.5% of the time, so almost no problem gave a
# right and a wrong sample to pair; one-step problems 2-17% (bare sums best), enough for pairs.
LEVELS = {
    "one-step": ("Give the final number on a last line as 'Answer: N'.", (
        ("What is {a} + {b}?", lambda a, b, c: a + b),
        ("{n} has {a} {i} and buys {b} more. How many {i} does {n} have now?", lambda a, b, c: a + b),
        ("What is {a} - {c}?", lambda a, b, c: a - c),
        ("{n} has {a} {i} and gives away {c}. How many {i} does {n} have left?", lambda a, b, c: a - c),
    )),
    "two-step": ("Solve step by step, then give the final number on a last line as 'Answer: N'.", (
        ("{n} has {a} {i}. {n} buys {b} more and then gives away {c}. How many {i} does {n} have now?",
         lambda a, b, c: a + b - c),
        ("{n} has {a} bags with {b} {i} in each, and finds {c} more {i}. How many {i} does {n} have?",
         lambda a, b, c: a * b + c),
        ("{n} had {a} {i} and lost {c}. Then {n} doubled what was left. How many {i} are there now?",
         lambda a, b, c: 2 * (a - c)),
        ("There are {a} {i} shared equally by {b} friends, and each friend gets {c} extra. How many {i} does "
         "each friend have?", lambda a, b, c: a // b + c),
    )),
}


@dataclass(frozen=True)
class Problem:
    prompt: tuple[Message, ...]
    answer: int


def make_problems(n: int, seed: int, level: str = "two-step") -> list[Problem]:
    """n seeded word problems of a `LEVELS` level; every answer is a non-negative integer (divisions come out
    even, a > c)."""
    if level not in LEVELS:
        raise ConfigError(f"arithmetic level {level!r}: expected one of {sorted(LEVELS)}")
    instruction, templates = LEVELS[level]
    rng = random.Random(seed)
    problems = []
    for _ in range(n):
        template, solve = rng.choice(templates)
        b, c = rng.randint(2, 9), rng.randint(1, 9)
        a = b * rng.randint(2, 9) if "shared equally" in template else rng.randint(c + 1, 30)
        text = template.format(n=rng.choice(NAMES), i=rng.choice(ITEMS), a=a, b=b, c=c)
        problems.append(Problem(({"role": "user", "content": f"{text} {instruction}"},), solve(a, b, c)))
    return problems


def extract_answer(reply: str) -> int | None:
    """The reply's final answer: the first integer after its last 'Answer:', else its last integer; None if none."""
    tail = reply.rsplit("Answer:", 1)[-1] if "Answer:" in reply else reply
    numbers = re.findall(r"-?\d[\d,]*", tail)
    chosen = numbers[0] if "Answer:" in reply and numbers else (numbers[-1] if numbers else None)
    return None if chosen is None else int(chosen.replace(",", ""))


def check(reply: str, answer: int) -> bool:
    """Exact match of the reply's final answer with `answer`."""
    return extract_answer(reply) == answer


def _pattern(template: str) -> re.Pattern:
    """A regex reading a, b, c (and the repeated name and item) back out of a problem made from `template`."""
    text, seen = re.escape(template), set()
    for name in re.findall(r"\\\{(\w)\\\}", text):
        group = f"(?P={name})" if name in seen else (f"(?P<{name}>\\d+)" if name in "abc" else f"(?P<{name}>\\w+)")
        text, seen = text.replace(f"\\{{{name}\\}}", group, 1), seen | {name}
    return re.compile(text)


PATTERNS = tuple((_pattern(t), solve) for _, templates in LEVELS.values() for t, solve in templates)


def solve(problem_text: str) -> int | None:
    """The answer of a problem `make_problems` wrote (its prompt text), None for any other text: the checker needs
    no stored answer, so a rule reward can judge replies from the prompt alone."""
    for pattern, fn in PATTERNS:
        m = pattern.search(problem_text)
        if m:
            return fn(int(m["a"]), int(m["b"]) if "b" in m.groupdict() else 0, int(m["c"]) if "c" in m.groupdict() else 0)
    return None


def reference_answer(value) -> int | None:
    """A dataset's answer cell as an integer: an int, or text whose final number is the answer ("42", GSM8K's
    "...#### 42"); None when it holds no integer."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    return extract_answer(str(value).replace("####", "Answer:"))


def exact_match(prompts=(), completions=(), solution=None, answer=None, **kwargs) -> list[float | None]:
    """Rule reward in TRL's signature (`arithmetic=preforch.data.arithmetic:exact_match`): 1.0 for a correct final
    answer, 0.0 for a wrong one, None ("not applicable") for a prompt it cannot judge.

    The right answer comes from the dataset's `solution` or `answer` column when there is one (TRL passes dataset
    columns to reward functions, as its accuracy rewards read `solution`), else from solving a bundled template
    problem (`solve`). A prompt with neither, or an answer cell without an integer, is not judged: never "wrong".
    """
    column = solution if solution is not None else answer
    if column is not None and len(column) != len(completions):
        raise ConfigError(f"exact_match: {len(column)} answers for {len(completions)} completions")
    answers = [reference_answer(column[i]) if column is not None else solve(text_of(p)) for i, p in enumerate(prompts)]
    return [None if a is None else float(check(text_of(c), a)) for a, c in zip(answers, completions)]
