import pytest
import torch

from preforch.errors import ConfigError
from preforch.serving.decoding.guided_decoding import StepRule, guided_decode
from preforch.serving.policies.mahalo import MahaloSettings


def _lm(tiny_policy_dir):
    from preforch.models import load_policy

    model, tok = load_policy(tiny_policy_dir, dtype=torch.float32, device="cpu")
    ids = tok.apply_chat_template([{"role": "user", "content": "tell me a story"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    return model, tok, ids


def _decode(model, tok, ids, **kw):
    args = dict(num_candidates=3, rule=StepRule((" the",), min_tokens=2, max_tokens=5), max_new_tokens=14,
                eos_ids=[-1], decode=tok.decode, score=lambda rows: torch.tensor([float(len(r)) for r in rows]))
    return guided_decode(lambda **x: model(**x), ids, **{**args, **kw})


def test_cache_continued_decoding_gives_the_tokens_of_re_encoding(tiny_policy_dir):
    model, tok, ids = _lm(tiny_policy_dir)
    cached = _decode(model, tok, ids, temperature=0)
    assert cached == _decode(model, tok, ids, temperature=0, reuse_cache=False) and len(cached) == 14
    plain = model.generate(ids, max_new_tokens=14, do_sample=False, eos_token_id=None, pad_token_id=0)[0, ids.shape[1]:]
    assert cached == plain.tolist()  # greedy steps chained through the cache are plain greedy decoding


def test_sampled_candidates_of_unequal_length_continue_like_re_encoding(tiny_policy_dir):
    """Candidates end at different tokens (masked padding in the kept cache); seeded sampling draws the same
    tokens whether the winner's cache continues or everything is re-encoded."""
    model, tok, ids = _lm(tiny_policy_dir)
    runs = []
    for reuse in (True, False):
        torch.manual_seed(3)
        runs.append(_decode(model, tok, ids, temperature=1.0, reuse_cache=reuse,
                            rule=StepRule(tuple(tok.decode([t]) for t in range(1000, 1400)), 1, 6),
                            score=lambda rows: -torch.tensor([float(len(r)) for r in rows])))
    assert runs[0] == runs[1]


def test_the_best_scored_candidate_is_kept_at_each_step(tiny_policy_dir):
    model, tok, ids = _lm(tiny_policy_dir)
    seen = []

    def score(rows):
        seen.append([list(r) for r in rows])
        return torch.tensor([float(r[-1]) for r in rows])  # prefer the highest last token id

    torch.manual_seed(0)
    kept = _decode(model, tok, ids, temperature=1.0, score=score, rule=StepRule(("zzz",), 1, 4), max_new_tokens=8)
    first = max(seen[0], key=lambda r: r[-1])
    assert len(seen) == 2 and kept[:4] == first and all(r[:4] == first for r in seen[1])


def test_a_boundary_that_never_occurs_still_ends_at_max_tokens(tiny_policy_dir):
    model, tok, ids = _lm(tiny_policy_dir)
    kept = _decode(model, tok, ids, temperature=1.0, rule=StepRule(("never-seen-marker",), 1, 100), max_new_tokens=9)
    assert len(kept) == 9
    assert StepRule.named("sentence").ends("It works. ", 9) and not StepRule.named("sentence").ends("It works. ", 3)


def test_guidance_settings_are_checked():
    with pytest.raises(ConfigError, match="needs guide"):
        MahaloSettings(policy="p", step_candidates=4)
    with pytest.raises(ConfigError, match="must be >= 1"):
        MahaloSettings(policy="p", guide="g", step_candidates=4, max_step_tokens=0)
