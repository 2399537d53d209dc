import pytest
import torch

from preforch.data.conditioning import parse, render, ric_targets, round_to_hundredths
from preforch.errors import ConfigError, WeightsError

OBJ = ("helpful", "harmless", "concise")
DIALOGUE = ({"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "How do I bake bread?"})


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_weights_round_trip_for_random_vectors(k):
    objectives = [f"obj_{i}" for i in range(k)]
    gen = torch.Generator().manual_seed(k)
    for _ in range(50):
        w = torch.softmax(torch.randn(k, generator=gen) * 3, 0)  # spread out, some entries near 0
        prompt = render(DIALOGUE, w, objectives, "weights")
        kind, back, stripped = parse(prompt, objectives)
        assert kind == "weights" and stripped == DIALOGUE
        assert back.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert torch.allclose(back, w, atol=0.01), "2 decimals, each off by at most one hundredth"
        assert render(stripped, back, objectives, "weights") == prompt, "parse -> render is the identity on tags"


@pytest.mark.parametrize("k", [1, 2, 4])
def test_scores_round_trip_for_random_vectors(k):
    objectives = [f"o{i}" for i in range(k)]
    for seed in range(20):
        s = torch.randn(k, generator=torch.Generator().manual_seed(seed)) * 2
        prompt = render("What now?", s, objectives, "scores")
        kind, back, stripped = parse(prompt, objectives)
        assert kind == "scores" and stripped == ({"role": "user", "content": "What now?"},)
        assert torch.allclose(back, s, atol=0.005 + 1e-6)


def test_format_is_one_ascii_tag_line_on_the_last_user_turn_and_the_input_is_not_mutated():
    original = [dict(m) for m in DIALOGUE]
    out = render(DIALOGUE, torch.tensor([0.8, 0.2, 0.0]), OBJ, "weights")
    assert out[-1]["content"] == "<preference helpful=0.80 harmless=0.20 concise=0.00>\nHow do I bake bread?"
    assert out[:-1] == DIALOGUE[:-1] and list(DIALOGUE) == original
    scores = render(DIALOGUE, torch.tensor([0.534, -1.2, 3.0]), OBJ, "scores")[-1]["content"]
    assert scores.startswith("<scores helpful=+0.53 harmless=-1.20 concise=+3.00>\n") and scores.isascii()


def test_rounding_keeps_the_sum_exact():
    assert round_to_hundredths(torch.tensor([1 / 3] * 3)) == [34, 33, 33]
    assert sum(round_to_hundredths(torch.full((7,), 1 / 7))) == 100
    _, w, _ = parse("<preference helpful=0.33 harmless=0.33 concise=0.33>\nhi", OBJ)  # hand-written, sum 0.99
    assert w.sum().item() == pytest.approx(1.0) and torch.allclose(w, torch.full((3,), 1 / 3))
    _, w, _ = parse("<preference concise=0.5 helpful=0.5 harmless=0>\nhi", OBJ)  # any order
    assert w.tolist() == [0.5, 0.0, 0.5]


@pytest.mark.parametrize("text, message", [
    ("How do I bake bread?", "no conditioning tag"),
    ("<preference helpful=0.8 harmless=0.2 concise=0.0> no newline", "malformed conditioning tag"),
    ("<preference helpful=0.8\nharmless=0.2 concise=0>\nhi", "malformed conditioning tag"),
    ("<preference helpful=0.8 kindness=0.2 concise=0>\nhi", "unknown objective 'kindness'"),
    ("<preference helpful=0.8>\nhi", r"must sum to 1 \(within 0.01\), got sum 0.8000"),
    ("<preference>\nhi", "name at least one objective"),
    ("<scores>\nhi", "name at least one objective"),
    ("<preference helpful=0.8 helpful=0.2 concise=0>\nhi", "'helpful' given twice"),
    ("<preference helpful=abc harmless=0.2 concise=0>\nhi", "helpful='abc' is not a number"),
    ("<preference helpful=nan harmless=0.2 concise=0>\nhi", "not a finite number"),
    ("<preference helpful 0.8 harmless=0.2 concise=0>\nhi", "expected name=value"),
    ("<preference helpful=1.2 harmless=-0.2 concise=0>\nhi", "must be non-negative"),
    ("<preference helpful=0.7 harmless=0.2 concise=0>\nhi", r"must sum to 1 \(within 0.01\), got sum 0.9000"),
])
def test_parse_errors_name_the_problem(text, message):
    with pytest.raises(WeightsError, match=message):
        parse(text, OBJ)


def test_render_errors():
    tagged = render("hi", torch.tensor([1.0, 0.0, 0.0]), OBJ, "weights")
    with pytest.raises(WeightsError, match="already starts with a conditioning tag"):
        render(tagged, torch.tensor([1.0, 0.0, 0.0]), OBJ, "weights")
    with pytest.raises(WeightsError, match="must sum to 1"):
        render("hi", torch.tensor([0.7, 0.2, 0.0]), OBJ, "weights")
    with pytest.raises(WeightsError, match="non-negative"):
        render("hi", torch.tensor([1.2, -0.2, 0.0]), OBJ, "weights")
    with pytest.raises(WeightsError, match="expected 3 weights"):
        render("hi", torch.tensor([0.5, 0.5]), OBJ, "weights")
    with pytest.raises(WeightsError, match="finite values"):
        render("hi", torch.tensor([0.5, float("inf"), 0.0]), OBJ, "scores")
    with pytest.raises(WeightsError, match="name at least one objective"):
        render("hi", torch.tensor([1.0, 0.0, 0.0]), OBJ, "weights", named=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(WeightsError, match="mask"):
        render("hi", torch.tensor([1.0, 0.0, 0.0]), OBJ, "weights", named=torch.ones(2, dtype=torch.bool))
    with pytest.raises(WeightsError, match=r"must sum to 1 \(on the simplex\)"):  # the named ones must sum to 1
        render("hi", torch.tensor([0.5, 0.5, 0.0]), OBJ, "weights", named=torch.tensor([True, False, True]))
    with pytest.raises(WeightsError, match="finite values"):  # NaN is only allowed where not named
        render("hi", torch.tensor([0.5, float("nan"), 0.0]), OBJ, "scores", named=torch.tensor([True, True, False]))
    with pytest.raises(ConfigError, match="cannot go into a prompt tag"):
        render("hi", torch.tensor([0.5, 0.5]), ["very helpful", "harmless"], "weights")
    with pytest.raises(ConfigError, match="kind"):
        render("hi", torch.tensor([0.5, 0.5]), ["a", "b"], "ranks")


def test_a_tag_names_only_the_objectives_that_apply_and_parses_back():
    """A chat reply is not tagged with an exact-match weight or score (DESIGN.md section 8): the tag names the
    objectives that apply; parsing gives an unnamed weight 0 and an unnamed score NaN (Scores.from_nan's mask)."""
    objectives = ("helpful", "harmless", "arithmetic")
    chat = torch.tensor([True, True, False])
    prompt = render("Hi", torch.tensor([0.4, 0.6, float("nan")]), objectives, "weights", named=chat)
    assert prompt[-1]["content"] == "<preference helpful=0.40 harmless=0.60>\nHi"
    kind, w, stripped = parse(prompt, objectives)
    assert kind == "weights" and w.tolist() == pytest.approx([0.4, 0.6, 0.0]) and stripped[-1]["content"] == "Hi"
    # rounding runs over the named weights only, so they still sum to exactly 1.00
    problem = torch.tensor([False, True, True])
    thirds = render("Hi", torch.tensor([0.0, 1 / 3, 2 / 3]), objectives, "weights", named=problem)
    assert thirds[-1]["content"].startswith("<preference harmless=0.33 arithmetic=0.67>\n")

    prompt = render("Hi", torch.tensor([0.534, -1.2, float("nan")]), objectives, "scores", named=chat)
    assert prompt[-1]["content"] == "<scores helpful=+0.53 harmless=-1.20>\nHi"
    kind, s, _ = parse(prompt, objectives)
    assert kind == "scores" and s[:2].tolist() == pytest.approx([0.53, -1.2]) and s[2].isnan()
    assert render("Hi", s.nan_to_num(0.0), objectives, "scores", named=~s.isnan()) == prompt, "parse -> render"
    assert render("Hi", torch.tensor([0.5, 0.5, 0.0]), objectives, "weights")[-1]["content"].startswith(
        "<preference helpful=0.50 harmless=0.50 arithmetic=0.00>"), "without a mask every objective is named"


def test_ric_targets_match_hand_computed_values():
    low, high = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0])
    # w_1 = 0.8 >= 1/2 -> high_1; w_2 = 0.2 -> -2 + 2 * 0.2 * 4 = -0.4
    assert ric_targets(torch.tensor([0.8, 0.2]), low, high).tolist() == pytest.approx([1.0, -0.4])
    batch = ric_targets(torch.tensor([[0.5, 0.5], [0.0, 1.0]]), low, high)
    assert torch.allclose(batch, torch.tensor([[1.0, 2.0], [-1.0, 2.0]]))
    # K = 3: 1/3 threshold; w = (0.6, 0.3, 0.1) -> (high, 0 + 3 * 0.3 * 1, 0 + 3 * 0.1 * 1)
    t = ric_targets(torch.tensor([0.6, 0.3, 0.1]), torch.zeros(3), torch.ones(3))
    assert t.tolist() == pytest.approx([1.0, 0.9, 0.3])
    with pytest.raises(WeightsError, match="sum to 1"):
        ric_targets(torch.tensor([0.6, 0.6]), low, high)
