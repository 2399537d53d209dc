"""Preference pairs for the verifiable objective from the policy's own samples: for each arithmetic problem, a
sample the checker accepts is chosen over one it rejects (problems where all samples agree give no pair)."""

from __future__ import annotations

from preforch.data.arithmetic import check, make_problems
from preforch.data.schema import PreferenceDataset, PreferencePair
from preforch.generation.sampling import SamplingConfig, sample_candidates

SOURCE = "arithmetic"


def pairs_from_samples(problems, samples: list[list[str]]) -> PreferenceDataset:
    """One pair per problem holding both a correct and an incorrect sample (the first of each); samples [P][n]."""
    pairs = []
    for problem, row in zip(problems, samples):
        right = [s for s in row if check(s, problem.answer)]
        wrong = [s for s in row if not check(s, problem.answer)]
        if right and wrong:
            pairs.append(PreferencePair(problem.prompt, right[0], wrong[0], SOURCE))
    return PreferenceDataset(pairs)


def arithmetic_pairs(model, tokenizer, num_problems: int, seed: int, samples: int, max_new_tokens: int,
                     level: str = "two-step", batch_size: int = 16) -> tuple[PreferenceDataset, dict]:
    """Pairs from `samples` sampled replies (temperature 1) to each of `num_problems` seeded problems of `level`,
    and a record: problems, pairs, the samples' exact-match accuracy."""
    problems = make_problems(num_problems, seed, level)
    sampling = SamplingConfig(samples, max_new_tokens, temperature=1.0, top_p=1.0, batch_size=batch_size)
    rows = sample_candidates(model, tokenizer, [p.prompt for p in problems], sampling)
    accuracy = sum(check(s, p.answer) for p, row in zip(problems, rows) for s in row) / max(1, samples * len(problems))
    pairs = pairs_from_samples(problems, rows)
    return pairs, {"problems": len(problems), "pairs": len(pairs), "sample_accuracy": accuracy, "seed": seed,
                   "level": level}
