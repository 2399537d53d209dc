from preforch.evaluation.plots import plot_grouped_bars


def test_grouped_bars_leave_out_an_objective_that_applies_to_none_of_a_groups_prompts(tmp_path):
    # best-of-n by source on a mixed-intent ensemble: exact match has no mean on chat prompts
    table = {"hh-helpful": {"uniform": {"helpful": 0.4, "arithmetic": None}, "orchestrator": {"helpful": 0.6, "arithmetic": None}},
             "arithmetic": {"uniform": {"helpful": 0.1, "arithmetic": -0.5}, "orchestrator": {"helpful": 0.0, "arithmetic": 0.5}}}
    plot_grouped_bars(table, ["helpful", "arithmetic"], tmp_path / "bars.png", "mean normalised reward of pick")
    assert (tmp_path / "bars.png").stat().st_size > 0
