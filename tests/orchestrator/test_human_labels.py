import pytest
import torch

from preforch.orchestrator.calibration import fit_temperature, label_nll, tempered_weights
from preforch.orchestrator.human_labels import (best_fixed_weights, human_label_table, pair_hits, paired_bootstrap,
                                                preference_accuracy, source_oracle_weights)

# Three pairs, K = 2: chosen-minus-rejected normalised scores.
DELTA = torch.tensor([[1.0, -2.0],   # objective 0 right, 1 wrong
                      [-1.0, 0.5],   # objective 1 right
                      [0.3, 0.2]])   # both right


def test_accuracy_on_a_hand_computed_case():
    # uniform margins: -0.5, -0.25, 0.25 -> only pair 3 agrees with the label
    assert preference_accuracy(torch.tensor([0.5, 0.5]), DELTA) == pytest.approx(1 / 3)
    # per-prompt weights: pair 1 on objective 0 (+1), pair 2 on objective 1 (+0.5), pair 3 on 0 (+0.3)
    per_prompt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert preference_accuracy(per_prompt, DELTA) == 1.0
    # an exact tie counts half: w = (2/3, 1/3) on pair 1 gives 2/3 - 2/3 = 0
    assert pair_hits(torch.tensor([2 / 3, 1 / 3]), DELTA[:1]).item() == pytest.approx(0.5)


def test_best_fixed_vector_and_source_oracle():
    w, acc = best_fixed_weights(DELTA, divisions=10)
    assert acc == pytest.approx(2 / 3) and w.sum().item() == pytest.approx(1.0)
    oracle = source_oracle_weights(["hh-helpful", "hh-harmless"], ["helpful", "harmless", "conciseness"])
    assert oracle.tolist() == [[1, 0, 0], [0, 1, 0]]
    assert source_oracle_weights(["web"], ["helpful", "harmless"]) is None  # no objective named: no oracle


def test_paired_bootstrap_margin_and_ci():
    a = torch.tensor([1.0] * 80 + [0.0] * 20)
    b = torch.tensor([1.0] * 60 + [0.0] * 40)
    m = paired_bootstrap(a, b)
    assert m["margin"] == pytest.approx(0.2)
    assert m["ci95"][0] > 0.1 and m["ci95"][1] < 0.3  # 20 discordant pairs all favour a
    same = paired_bootstrap(a, a)
    assert same["margin"] == 0 and same["ci95"] == [0.0, 0.0]


def test_table_lists_every_baseline_and_the_margins():
    delta = torch.randn(200, 2)
    sources = ["hh-helpful", "hh-harmless"] * 100
    orch = torch.softmax(torch.randn(200, 2), -1)
    t = human_label_table(delta, ["helpful", "harmless"], {"orchestrator": orch}, sources)
    assert {"uniform", "helpful only", "harmless only", "best fixed (test, ceiling)", "orchestrator",
            "per-source oracle"} <= set(t["rows"])
    assert t["rows"]["best fixed (test, ceiling)"]["accuracy"] >= t["rows"]["uniform"]["accuracy"]
    assert "orchestrator - uniform" in t["margins"]
    lo, hi = t["rows"]["uniform"]["ci95"]
    assert lo <= t["rows"]["uniform"]["accuracy"] <= hi



def test_table_gives_each_source_alone():
    # helpful decides every hh-helpful pair, harmless every hh-harmless one; 'helpful only' is right on one source
    delta = torch.tensor([[1.0, -1.0]] * 3 + [[-1.0, 1.0]] * 2)
    sources = ["hh-helpful"] * 3 + ["hh-harmless"] * 2
    t = human_label_table(delta, ["helpful", "harmless"], {}, sources)
    assert t["by_source"]["hh-helpful"]["n"] == 3 and t["by_source"]["hh-harmless"]["n"] == 2
    assert t["by_source"]["hh-helpful"]["helpful only"] == 1.0 and t["by_source"]["hh-harmless"]["helpful only"] == 0.0
    assert t["rows"]["helpful only"]["accuracy"] == pytest.approx(0.6)  # pooled: the two sources mixed
    assert "by_source" not in human_label_table(delta, ["helpful", "harmless"], {}, ["one"] * 5)


def test_calibrated_weights_stay_on_the_simplex():
    logits = torch.randn(50, 3) * 5
    for t in (0.05, 0.3, 1.0, 4.0):
        w = tempered_weights(logits, t)
        assert torch.allclose(w.sum(-1), torch.ones(50), atol=1e-5) and (w >= 0).all()
    with pytest.raises(ValueError, match="temperature must be > 0"):
        tempered_weights(logits, 0.0)


def test_fit_temperature_sharpens_weights_that_rank_right_but_are_flat():
    # The logits point at the objective whose score difference is positive, but only weakly.
    torch.manual_seed(0)
    right = torch.randint(0, 2, (400,))
    delta = torch.where(torch.nn.functional.one_hot(right, 2).bool(), 1.0, -0.8)
    logits = torch.nn.functional.one_hot(right, 2).float() * 0.2
    t, nll = fit_temperature(logits, delta)
    assert t < 0.5
    assert nll[t] < label_nll(tempered_weights(logits, 1.0), delta)
    with pytest.raises(ValueError, match="no validation pairs"):
        fit_temperature(logits[:0], delta[:0])
