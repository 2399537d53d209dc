import json

import pytest

from preforch.cli import main
from tests.conftest import make_pairs


def _stack(tmp_path, tiny_encoder_dir, tiny_ensemble_dir) -> str:
    """A trained orchestrator folder with its train_metrics.json, on synthetic pairs of two sources."""
    from preforch.orchestrator.config import OrchestratorConfig
    from preforch.orchestrator.train import train_and_evaluate

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p.prompt[-1]["content"], "chosen": p.chosen, "rejected": p.rejected,
                                        "source": p.source}) + "\n" for p in make_pairs(40)))
    out = tmp_path / "orchestrator"
    train_and_evaluate(OrchestratorConfig(ensemble=tiny_ensemble_dir, encoder=tiny_encoder_dir, train_data=[str(data)],
                                          eval_data=[str(data)], output_dir=str(out), epochs=3), progress=False)
    return str(out)


def test_robustness_retrains_per_level_reports_and_resumes(tmp_path, tiny_encoder_dir, tiny_ensemble_dir, monkeypatch):
    orchestrator = _stack(tmp_path, tiny_encoder_dir, tiny_ensemble_dir)
    args = ["robustness", "--orchestrator", orchestrator, "--objective", "harmless", "--noise_levels", "0", "3",
            "--length_levels", "0", "1", "--random_levels", "0", "1", "--output_dir", str(tmp_path / "rob")]
    assert main(args) == 0
    r = json.loads((tmp_path / "rob" / "robustness.json").read_text())
    assert set(r["levels"]) == {"clean", "noise 3", "length 1", "random 1"}  # level 0 is one shared clean run
    assert r["curves"]["noise"] == ["clean", "noise 3"]
    for entry in r["levels"].values():
        assert set(entry["accuracy"]) == {"orchestrator", "uniform", "best fixed (validation)"}
        assert 0 <= entry["weight"]["orchestrator"] <= 1
    # a random harmless reward changes what the human labels say of it: the accuracies move
    assert r["levels"]["random 1"]["accuracy"] != r["levels"]["clean"]["accuracy"]
    assert (tmp_path / "rob" / "robustness.png").stat().st_size > 0
    assert "## noise" in (tmp_path / "rob" / "report.md").read_text()

    from preforch.orchestrator import fit

    monkeypatch.setattr(fit, "train_orchestrator", lambda *a, **k: pytest.fail("a finished level was redone"))
    assert main(args) == 0


def test_robustness_refuses_an_objective_the_ensemble_lacks(tmp_path, tiny_encoder_dir, tiny_ensemble_dir, capsys):
    orchestrator = _stack(tmp_path, tiny_encoder_dir, tiny_ensemble_dir)
    assert main(["robustness", "--orchestrator", orchestrator, "--objective", "honesty",
                 "--output_dir", str(tmp_path / "rob")]) == 2
    assert "corruption: objective 'honesty' is not in the ensemble" in capsys.readouterr().err
