"""The verifiable objective: templated arithmetic word problems with an exact-answer checker, seeded.

A problem is a chat prompt asking for the answer on a last line `Answer: N`; `check` reads the last integer of a
reply (after `Answer:` when there is one) and compares it exactly. The same checker scores training pairs,
guides decoding and judges evaluation, so they cannot drift apart.

Evaluation problems can be fresh (`make_fresh_problems`): one-step problems on (operation, a, b) triples no training
problem uses, in the training phrasing or in wordings and answer instructions ('Result: N', 'The answer is N.')
the training templates never use; `solve` and the checker read those too.
"""

from __future__ import annotations

import operator
import random
import re
from dataclasses import dataclass
from typing import Collection, Sequence

from preforch.data.schema import Message, text_of
from preforch.errors import ConfigError

NAMES = ("Ana", "Ben", "Chloe", "Dev", "Eli", "Fay", "Gus", "Hana")
ITEMS = ("apples", "books", "coins", "marbles", "pencils", "stickers")
FRESH_NAMES = ("Tom", "Iris", "Jon", "Kira")
FRESH_ITEMS = ("stamps", "shells", "cards", "beads")

Triple = tuple[str, int, int]  # (operation, a, b) of a one-step problem: ("+", 12, 5) asks for 12 + 5
OPERATIONS = {"+": operator.add, "-": operator.sub}
# The template field of the second operand: {b} is added, {c} taken away (make_problems draws a > c: no negative
# difference)
SECOND = {"+": "b", "-": "c"}
# The training's one-step wordings by operation, before the level's instruction
ONE_STEP = {
    "+": ("What is {a} + {b}?", "{n} has {a} {i} and buys {b} more. How many {i} does {n} have now?"),
    "-": ("What is {a} - {c}?", "{n} has {a} {i} and gives away {c}. How many {i} does {n} have left?"),
}
# Wordings and answer instructions no training problem uses, each template with its instruction
FRESH = {
    "+": ("Compute {a} plus {b}. Reply with the number after 'Result:'.",
          "Add {b} to {a}. End with 'The answer is N.'",
          "{n} had {a} {i} and got {b} more; how many {i} now? End with 'The answer is N.'",
          "A box held {a} {i}, and {b} were put in. Reply with the number of {i} in the box after 'Result:'."),
    "-": ("Compute {a} minus {c}. Reply with the number after 'Result:'.",
          "Subtract {c} from {a}. End with 'The answer is N.'",
          "{n} had {a} {i} and lost {c}; how many {i} now? End with 'The answer is N.'",
          "A box held {a} {i}, and {c} were taken out. Reply with the number of {i} in the box after 'Result:'."),
}
ONE_STEP_INSTRUCTION = "Give the final number on a last line as 'Answer: N'."


def _one_step(op: str):
    """`make_problems`' solver (a, b, c) -> answer of a one-step template of operation `op`."""
    return lambda a, b, c: OPERATIONS[op](a, {"b": b, "c": c}[SECOND[op]])


# Per level: the instruction ending every prompt, and (template, answer) over drawn a, b, c. SmolLM2-135M-Instruct
# samples (temperature 1, 4 per problem) got two-step problems right 0.5% of the time, so almost no problem gave a
# right and a wrong sample to pair; one-step problems 2-17% (bare sums best), enough for pairs.
LEVELS = {
    "one-step": (ONE_STEP_INSTRUCTION, tuple((t, _one_step(op)) for op, ts in ONE_STEP.items() for t in ts)),
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


# A fresh problem's first operand goes up to 40: training's range (a <= 30) holds 457 one-step triples, 273 of them
# used by the bundled training problems (arithmetic-smollm2:train), fewer left (184) than the 200 problems per source
# the headline test needs; up to 40 leaves 354. The second operand stays single-digit, as in training.
FRESH_MAX = 40
# Phrasings of a one-step problem: templates by operation (each ending with its answer instruction), names, items
PHRASINGS = {
    "trained": ({op: tuple(f"{t} {ONE_STEP_INSTRUCTION}" for t in ts) for op, ts in ONE_STEP.items()}, NAMES, ITEMS),
    "fresh": (FRESH, FRESH_NAMES, FRESH_ITEMS),
}


def one_step_triples(max_first: int) -> list[Triple]:
    """Every one-step triple in `make_problems`' operand ranges with the first operand up to `max_first`, in a fixed
    order: a + b with 2 <= a and 2 <= b <= 9, then a - c with 1 <= c <= 9 and c < a (never negative)."""
    return ([("+", a, b) for a in range(2, max_first + 1) for b in range(2, 10)]
            + [("-", a, c) for c in range(1, 10) for a in range(c + 1, max_first + 1)])


def _phrase(triple: Triple, phrasing: str, rng: random.Random) -> Problem:
    """The problem asking for `triple` in a template, name and item of `phrasing` (a `PHRASINGS` key) drawn by
    `rng`."""
    op, a, x = triple
    templates, names, items = PHRASINGS[phrasing]
    text = rng.choice(templates[op]).format(n=rng.choice(names), i=rng.choice(items), a=a, **{SECOND[op]: x})
    return Problem(({"role": "user", "content": text},), OPERATIONS[op](a, x))


def make_fresh_problems(n: int, seed: int, exclude: Collection[Triple] = (), phrasing: str = "fresh") -> list[Problem]:
    """n seeded one-step problems on distinct triples outside `exclude` (e.g. the training problems'), drawn
    uniformly from `one_step_triples(FRESH_MAX)`, in `phrasing`: 'trained' (the training templates and instruction),
    'fresh' (wordings, names and answer instructions no training problem uses) or 'mixed' (alternately one and the
    other, so each half has triples of its own)."""
    if phrasing not in (*PHRASINGS, "mixed"):
        raise ConfigError(f"arithmetic phrasing {phrasing!r}: expected one of {[*PHRASINGS, 'mixed']}")
    exclude = set(exclude)
    pool = [t for t in one_step_triples(FRESH_MAX) if t not in exclude]
    if n > len(pool):
        raise ConfigError(f"{n} fresh arithmetic problems asked for; only {len(pool)} one-step triples with a first "
                          f"operand up to {FRESH_MAX} are not excluded")
    rng = random.Random(seed)
    styles = tuple(PHRASINGS) if phrasing == "mixed" else (phrasing,)
    return [_phrase(t, styles[i % len(styles)], rng) for i, t in enumerate(rng.sample(pool, n))]


# What a reply writes just before its final answer: the training instruction's 'Answer:', a fresh one's 'Result:'
# (only before a number: one bundled reply echoes "Result: N" after its right sum). The other fresh form, a closing
# 'The answer is N.', is the reply's last integer; as a marker it would relabel 28 bundled pairs, whose SmolLM2
# replies use it loosely ("The answer is 27 - 5 = 22."). The bundled pairs read exactly as before either way.
ANSWER_MARKER = re.compile(r"Answer:|Result:(?=\s*-?\d)")


def extract_answer(reply: str) -> int | None:
    """The reply's final answer: the first integer after its last 'Answer:' (or 'Result:' followed by a number),
    else its last integer; None if none."""
    marks = [m.end() for m in ANSWER_MARKER.finditer(reply)]
    numbers = re.findall(r"-?\d[\d,]*", reply[marks[-1]:] if marks else reply)
    if not numbers:
        return None
    return int((numbers[0] if marks else numbers[-1]).replace(",", ""))


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


# One-step wordings, the training's (without their instruction) and the fresh ones, then the two-step templates
TRIPLE_PATTERNS = tuple((_pattern(t), op) for table in (ONE_STEP, FRESH) for op, ts in table.items() for t in ts)
TWO_STEP_PATTERNS = tuple((_pattern(t), fn) for t, fn in LEVELS["two-step"][1])


def problem_triple(problem: str | Sequence[Message]) -> Triple | None:
    """The (operation, a, b) a one-step problem asks for, read from its text (or chat prompt) in any phrasing:
    "What is 12 + 5? ..." -> ("+", 12, 5); None for any other text (a two-step problem has no one triple)."""
    text = text_of(problem)
    for pattern, op in TRIPLE_PATTERNS:
        m = pattern.search(text)
        if m:
            return op, int(m["a"]), int(m[SECOND[op]])
    return None


def solve(problem_text: str) -> int | None:
    """The answer of a problem `make_problems` or `make_fresh_problems` wrote (its prompt text), None for any other
    text: the checker needs no stored answer, so a rule reward can judge replies from the prompt alone."""
    triple = problem_triple(problem_text)
    if triple is not None:
        return OPERATIONS[triple[0]](*triple[1:])
    for pattern, fn in TWO_STEP_PATTERNS:
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
