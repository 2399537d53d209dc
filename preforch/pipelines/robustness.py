"""`preforch robustness`: does the orchestrator cope with a bad reward source? One objective's reward is corrupted
at increasing levels (noise, a length bias, a random function: rewards/corruption.py); at each level a new head on
the trained orchestrator's frozen encoder is fitted with its saved settings on the corrupted stack, and the
human-label accuracy of the orchestrator, uniform and best fixed (re-chosen on the corrupted validation slice) is
read on the held-out pairs scored by the same corrupted stack, with the weight each puts on the corrupted objective.
If PRO works, its weight on the corrupted objective falls and its accuracy degrades no faster than best fixed's.

Each level is written to robustness.json as it finishes, so an interrupted run resumes; level 0 of every kind is
one shared clean run.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, fields
from pathlib import Path

import torch

from preforch.io import atomic_write_json, atomic_write_text, read_json
from preforch.pipelines.config import RobustnessConfig
from preforch.rewards.corruption import CORRUPTIONS, Corruption

RESULT_FILE = "robustness.json"
ROWS = ("orchestrator", "uniform", "best fixed (validation)")  # the weightings compared at every level
CLEAN = "clean"


def level_key(kind: str, level: float) -> str:
    return CLEAN if level == 0 else f"{kind} {level:g}"


def level_record(evaluation: dict, objective: str) -> dict:
    """What robustness.json keeps of one level's `evaluate_orchestrator` result: each compared row's accuracy and
    CI, the orchestrator's paired margins over the others, and each row's weight on the corrupted `objective`
    (the orchestrator's: mean over the held-out prompts, and by source)."""
    table = evaluation["human_labels"]
    rows = {name: table["rows"][name] for name in ROWS}
    return {
        "accuracy": {name: {"accuracy": r["accuracy"], "ci95": r["ci95"]} for name, r in rows.items()},
        "margins": {name: table["margins"][f"orchestrator - {name}"] for name in ROWS[1:]},
        "weight": {"orchestrator": evaluation["mean_weights"][objective],
                   "orchestrator_by_source": {s: w[objective] for s, w in evaluation.get("mean_weights_by_source", {}).items()},
                   **{name: rows[name]["weights"][objective] for name in ROWS[1:]}},
        "temperature": evaluation["temperature"],
    }


def orchestrator_settings(cfg: RobustnessConfig):
    """The `OrchestratorConfig` the orchestrator in cfg.orchestrator was trained with (its train_metrics.json)."""
    from preforch.orchestrator.config import OrchestratorConfig
    from preforch.orchestrator.train import ORCHESTRATOR_METRICS

    saved = read_json(Path(cfg.orchestrator) / ORCHESTRATOR_METRICS)["config"]
    names = {f.name for f in fields(OrchestratorConfig)}
    return OrchestratorConfig(**{k: v for k, v in saved.items() if k in names})


def refit(settings, ensemble, trained, train_data, held_out) -> dict:
    """`evaluate_orchestrator`'s record of a new head on `trained`'s frozen encoder (shared feature cache), fitted
    per `settings` (an OrchestratorConfig) on `ensemble`'s scores of `train_data`, read on `held_out`."""
    from preforch.orchestrator.evaluate import evaluate_orchestrator
    from preforch.orchestrator.fit import train_orchestrator

    model, info = train_orchestrator(settings, ensemble, train_data, progress=False, model=trained.sibling())
    return evaluate_orchestrator(model, ensemble, held_out, torch.tensor(info["mean_target"]), settings.positive_source)


def run_robustness(cfg: RobustnessConfig) -> dict:
    from preforch.data.loaders import load_many
    from preforch.evaluation.plots import plot_robustness
    from preforch.orchestrator.preference import load_orchestrator
    from preforch.rewards.corruption import CorruptedEnsemble
    from preforch.rewards.ensemble import RewardEnsemble

    out = Path(cfg.output_dir)
    settings = orchestrator_settings(cfg)
    base = RewardEnsemble.load(settings.ensemble)
    CorruptedEnsemble(base, Corruption(cfg.objective, "noise", 0.0))  # an objective the ensemble lacks fails now
    trained = load_orchestrator(cfg.orchestrator, base.objectives)  # its frozen encoder carries every new head
    train_data = load_many(settings.train_data, settings.max_train_pairs)
    held_out = load_many(settings.eval_data, settings.max_eval_pairs)
    path = out / RESULT_FILE
    levels = read_json(path).get("levels", {}) if path.is_file() else {}
    plan = [(kind, level) for kind in CORRUPTIONS for level in getattr(cfg, f"{kind}_levels")]
    total = len({level_key(kind, level) for kind, level in plan})
    for kind, level in plan:
        key = level_key(kind, level)
        if key in levels:
            continue
        print(f"robustness: {cfg.objective} under {key} ({len(levels) + 1} of {total})", flush=True)
        ensemble = CorruptedEnsemble(base, Corruption(cfg.objective, kind, level, cfg.seed))
        levels[key] = {"kind": kind, "level": level,
                       **level_record(refit(settings, ensemble, trained, train_data, held_out), cfg.objective)}
        atomic_write_json(path, {"levels": levels})  # resumable: a finished level is never redone
    result = {
        "config": asdict(cfg),
        "orchestrator_settings": asdict(settings),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "objective": cfg.objective,
        "held_out_pairs": len(held_out),
        "curves": {kind: [level_key(kind, v) for v in getattr(cfg, f"{kind}_levels")] for kind in CORRUPTIONS},
        "levels": levels,
    }
    atomic_write_json(path, result)
    plot_robustness(result, out / "robustness.png")
    atomic_write_text(out / "report.md", render_report(result))
    return result


def render_report(r: dict) -> str:
    """report.md: per corruption kind, a row per level of each weighting's accuracy, the orchestrator's margin over
    best fixed and every row's weight on the corrupted objective."""
    from preforch.evaluation.report import markdown_table

    o = r["objective"]
    lines = [f"# Robustness to a bad `{o}` reward", "",
             f"The `{o}` reward of `{r['orchestrator_settings']['ensemble']}` corrupted at increasing levels; at each, "
             f"a new orchestrator head fitted on the corrupted stack (settings of `{r['config']['orchestrator']}`) and "
             f"every weighting judged by combined-reward accuracy on {r['held_out_pairs']} held-out human-labelled "
             "pairs scored by the same corrupted stack (95% CIs; margin: paired bootstrap). Machine: "
             f"{r['machine']['processor']}, {r['machine']['platform']}.", ""]
    for kind, keys in r["curves"].items():
        rows = []
        for key in keys:
            e = r["levels"][key]
            margin = e["margins"]["best fixed (validation)"]
            rows.append([f"{r['levels'][key]['level']:g}",
                         *(f"{e['accuracy'][n]['accuracy']:.3f} [{e['accuracy'][n]['ci95'][0]:.3f}, "
                           f"{e['accuracy'][n]['ci95'][1]:.3f}]" for n in ROWS),
                         f"{margin['margin']:+.3f} [{margin['ci95'][0]:+.3f}, {margin['ci95'][1]:+.3f}]",
                         f"{e['weight']['orchestrator']:.3f}", f"{e['weight']['best fixed (validation)']:.3f}"])
        lines += [f"## {kind}", "", markdown_table(
            ["level", *ROWS, "orchestrator - best fixed", f"orchestrator's mean weight on {o}",
             f"best fixed's weight on {o}"], rows), ""]
    return "\n".join(lines)
