"""Pro-WiC / RiC where an objective does not apply to every sample (issue 37, DESIGN.md section 8): exact match on
arithmetic says nothing about a chat reply, so the self-weights, the tag, the filter, the score range and the
accounting skip it there instead of reading a made-up score."""

import json
import math

import pytest
import torch

from preforch.alignment.config import WicConfig
from preforch.alignment.wic import conditioning_values, make_spec, quantile_thresholds, rejection_mask, sft_rows
from preforch.data.arithmetic import exact_match, make_problems
from preforch.data.conditioning import parse
from preforch.errors import ConfigError
from preforch.generation.wic_methods import self_weights
from preforch.generation.sampling import SamplingConfig
from preforch.generation.wic_spec import WicSpec
from preforch.rewards.scores import Scores
from tests.conftest import make_pairs, make_wic_policy

OBJ = ("helpful", "harmless", "arithmetic")
NAN = math.nan


def _chat_and_problem_scores() -> Scores:
    """Row 0: a chat reply (arithmetic does not apply); row 1: an answer to a problem."""
    return Scores.from_nan(torch.tensor([[2.0, 0.0, NAN], [-1.0, 1.0, 1.0]]))


def test_self_weights_give_zero_to_an_objective_that_does_not_apply_and_the_tag_leaves_it_out():
    scores = _chat_and_problem_scores()
    w = self_weights(scores, tau=1.0)
    assert torch.allclose(w[0], torch.tensor([*torch.softmax(torch.tensor([2.0, 0.0]), 0).tolist(), 0.0]))
    assert torch.allclose(w[1], torch.softmax(torch.tensor([-1.0, 1.0, 1.0]), 0))
    labels = conditioning_values("pro-wic", scores, 1.0)
    assert torch.equal(labels.applies, scores.applies) and torch.allclose(labels.filled(0.0), w)
    assert conditioning_values("ric", scores, 1.0) is scores

    chat = ({"role": "user", "content": "hi"},)
    for method, tag in [("pro-wic", "<preference helpful=0.88 harmless=0.12>\nhi"),
                        ("ric", "<scores helpful=+2.00 harmless=+0.00>\nhi")]:
        spec = WicSpec(method, OBJ, 1.0, (-1.0,) * 3, (1.0,) * 3)
        rows = sft_rows([chat, chat], ["hello", "Answer: 3"], conditioning_values(method, scores, 1.0), spec)
        assert rows[0]["prompt"][0]["content"] == tag, "a chat sample's tag names only the objectives that apply"
        assert "arithmetic=" in rows[1]["prompt"][0]["content"]
        kind, values, stripped = parse(rows[0]["prompt"], OBJ)
        assert stripped == chat and values[:2].tolist() == pytest.approx(
            [0.88, 0.12] if kind == "weights" else [2.0, 0.0])
        assert values[2].item() == 0.0 if kind == "weights" else values[2].isnan(), "unnamed: weight 0, no score"


def test_thresholds_are_quantiles_over_the_rows_each_objective_applies_to():
    # arithmetic applies to rows 2-4 only; a chat row's NaN must neither set its level nor pass it
    reference = Scores.from_nan(torch.tensor([[0.0, 10.0, NAN], [1.0, 20.0, NAN], [2.0, 30.0, 0.2],
                                              [3.0, 40.0, 0.4], [4.0, 50.0, 0.6]]))
    thresholds = quantile_thresholds(reference, 0.5)
    assert thresholds.tolist() == pytest.approx([2.0, 30.0, 0.4]), "the chat rows are not zeros at the bottom"
    samples = Scores.from_nan(torch.tensor([[0.0, 0.0, NAN], [0.0, 0.0, 0.5], [0.0, 0.0, 0.3]]))
    assert rejection_mask(samples, thresholds).tolist() == [False, True, False]
    # an objective that applies to no row has no level (NaN, JSON null) and passes nobody on it
    none_apply = Scores.from_nan(torch.tensor([[1.0, NAN], [2.0, NAN], [3.0, NAN]]))
    levels = quantile_thresholds(none_apply, 0.7)
    assert levels[1].isnan() and rejection_mask(none_apply, levels).tolist() == [False, False, True]


def test_a_binary_column_passes_only_right_answers_not_every_row():
    """RiC's `>=` at the 0.7 quantile passes every row of a 0/1 column with under 30% right: the quantile is the
    minimum, a wrong answer's score. The level is raised to the smallest value above the minimum."""
    right = torch.tensor([0.0] * 8 + [1.0] * 2)  # 20% right
    spread = torch.arange(10.0)
    thresholds = quantile_thresholds(torch.stack([right, spread], -1), 0.7)
    assert thresholds.tolist() == pytest.approx([1.0, 6.3]), "the continuous column keeps RiC's quantile"
    passes = rejection_mask(torch.stack([right, torch.zeros(10)], -1), thresholds)
    assert passes.tolist() == [False] * 8 + [True] * 2, "only the right answers pass on exact match"
    # z-scored values, and the rule over applicable rows only: 1 right of 5 problems among chat rows
    z = Scores.from_nan(torch.tensor([NAN, -0.5, NAN, -0.5, 1.5, -0.5, -0.5, -0.5]).unsqueeze(-1))
    assert quantile_thresholds(z, 0.7).tolist() == [1.5]
    assert quantile_thresholds(torch.tensor([[0.0], [0.0], [0.0]]), 0.7).tolist() == [math.inf], "all equal: none pass"
    half = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    assert quantile_thresholds(half, 0.7).tolist() == [1.0], "a quantile above the minimum is left alone"


def test_spec_score_range_over_applicable_rows_and_an_objective_that_never_applies_is_refused():
    values = torch.stack([torch.arange(20.0), torch.arange(20.0) * 2], -1)
    applies = torch.ones(20, 2, dtype=torch.bool)
    applies[10:, 1] = False  # the second objective applies to the first 10 rows only
    spec = make_spec("ric", ["a", "b"], 1.0, Scores(values, applies))
    assert spec.score_low == pytest.approx((0.95, 0.9)) and spec.score_high == pytest.approx((18.05, 17.1))
    json.dumps(spec.to_dict(), allow_nan=False)
    applies[:, 1] = False
    with pytest.raises(ConfigError, match=r"objective\(s\) \['b'\] apply to none of the 20 offline replies"):
        make_spec("pro-wic", ["a", "b"], 1.0, Scores(values, applies))


def _mixed_round(monkeypatch):
    """4 chat prompts and 4 arithmetic problems, 2 replies each: reply k (0..15) gets helpful = k and harmless =
    5k mod 16 (both permutations of 0..15); exact match (the real rule) applies to the problems only and one of
    their 8 answers is right."""
    from preforch.alignment import wic_online

    problems = make_problems(4, seed=0)
    chats = [({"role": "user", "content": f"Tell me about bread, part {i}."},) for i in range(4)]
    prompts = chats + [p.prompt for p in problems]
    answers = [None] * 4 + [p.answer for p in problems]

    def sample(model, tokenizer, tagged, sampling, **_):
        assert len(tagged) == 8 and all(t[-1]["content"].startswith("<scores ") for t in tagged)
        return [[f"r{2 * i + j}: " + ("a chat reply" if a is None else f"Answer: {a if (i, j) == (4, 0) else a + 1}")
                 for j in range(sampling.num_candidates)] for i, a in enumerate(answers)]

    def scorer(prompts_, replies):
        k = torch.tensor([float(r.split(":")[0][1:]) for r in replies])
        right = torch.tensor([NAN if v is None else v for v in exact_match(prompts_, replies)])
        return Scores.from_nan(torch.stack([k, (k * 5) % 16, right], -1))

    monkeypatch.setattr(wic_online, "sample_candidates", sample)
    spec = WicSpec("ric", OBJ, 1.0, (-1.0,) * 3, (1.0,) * 3)
    preferences = torch.full((8, 3), 1 / 3)
    batch = wic_online.collect_online_samples(None, None, prompts, preferences, spec, scorer, None, 0.7,
                                              SamplingConfig(2, 8, 1.0, 1.0, 8))
    return batch


def test_a_mixed_online_round_keeps_well_below_every_sample(monkeypatch, tmp_path):
    from preforch.alignment.wic_online import _write_samples, finite_or_null, read_kept_samples

    batch = _mixed_round(monkeypatch)
    k = torch.arange(16.0)
    problem = torch.arange(16) >= 8
    assert torch.equal(batch.scores.applies[:, 2], problem)
    assert batch.thresholds.tolist() == pytest.approx([10.5, 10.5, 1.0])
    expected = (k >= 10.5) | ((k * 5) % 16 >= 10.5) | (torch.arange(16) == 8)  # reply 8: the one right answer
    assert batch.kept.tolist() == expected.tolist()
    assert batch.kept.float().mean() < 0.75, "well below 1"
    # the earlier reading (exact match 0 on chat replies, quantile over every row) kept every sample
    zeros = batch.scores.filled(0.0)
    assert rejection_mask(zeros, torch.quantile(zeros, 0.7, dim=0)).all()

    assert batch.scores.means()[0][2] == pytest.approx(1 / 8), "the mean right over the problems, not all replies"
    assert finite_or_null(torch.tensor([1.0, math.inf, NAN])) == [1.0, None, None]
    _write_samples(tmp_path / "online_samples_0.jsonl", 0, batch)
    rows = [json.loads(line) for line in (tmp_path / "online_samples_0.jsonl").read_text().splitlines()]
    assert rows[0]["scores"][2] is None and rows[0]["relabelled"][2] is None and rows[8]["scores"][2] == 1.0
    prompts, replies, values = read_kept_samples(tmp_path / "online_samples_0.jsonl")
    assert replies == [batch.replies[i] for i in expected.nonzero().flatten().tolist()]
    assert torch.equal(values.applies, batch.values[expected].applies), "null is read back as not applicable"


def test_online_accounting_writes_null_where_no_generated_sample_applies(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    """An objective that applies to the offline replies but to no generated one: its round threshold and mean are
    null in wic_run.json and its scores null in the samples file; the files are strict JSON (no NaN)."""
    from preforch.alignment.wic_online import read_kept_samples
    from preforch.alignment.wic_train import train_wic

    pairs = make_pairs(8)
    offline = {r for p in pairs for r in (p.chosen, p.rejected)}

    def scorer(prompts, replies):
        values = torch.tensor([[len(r) % 7 / 3, len(r) % 5 / 2, 1.0 if r in offline else NAN] for r in replies])
        return Scores.from_nan(values)

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": list(p.prompt), "chosen": p.chosen, "rejected": p.rejected})
                              for p in pairs))
    policy, _ = make_wic_policy(tiny_policy_dir, tmp_path, "ric")
    out = tmp_path / "online"
    cfg = WicConfig(method="ric", stage="online", policy=policy, ensemble=tiny_ensemble_dir, train_data=[str(data)],
                    online_data=[str(data)], online_prompts=3, num_generations=2, max_new_tokens=5, offline_mix=1,
                    sft_steps_per_iteration=1, per_device_train_batch_size=4, max_length=128, output_dir=str(out))
    train_wic(cfg, scorer=scorer)

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in a JSON file"))

    it = strict((out / "wic_run.json").read_text())["online"]["iterations"][0]
    assert it["thresholds"][2] is None and it["mean_scores_generated"]["conciseness"] is None
    assert it["thresholds"][0] is not None and it["mean_scores_generated"]["helpful"] is not None
    rows = [strict(line) for line in (out / "online_samples_0.jsonl").read_text().splitlines()]
    assert all(r["scores"][2] is None and r["relabelled"][2] is None for r in rows)
    _, replies, values = read_kept_samples(out / "online_samples_0.jsonl")
    assert len(replies) == it["kept"] and not values.applies[:, 2].any()
