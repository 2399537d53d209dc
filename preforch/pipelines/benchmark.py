"""`preforch build-benchmark`: everything a fair comparison of weightings needs, in one folder, by one recipe.

Stages, each reused when its artifact exists (`--overwrite` redoes them):
1. reward models on the training pairs (the orchestrator's validation slice held out, as in the quickstart);
2. the ensemble: those models plus the rules, z-scores fitted on the training pairs' replies (an objective with its
   own reference data, such as exact match on arithmetic problems, fitted on that data only);
3. the judge: reward models trained on the *held-out* pairs plus the same rules, z-scores fitted on held-out replies.
   Its reward models train and guide nothing, so they can judge every policy trained on the ensemble (its rules do
   train: said in the report); their training pairs share no first human turn with eval_data (checked before any
   stage runs), optionally on another backbone;
4. the orchestrator, trained on every source's pairs without its source label, judged on held-out human labels;
5. benchmark.json and report.md: reward-model and judge accuracies, the orchestrator's weights by source (the
   source labels are read here, for the report only) and its held-out combined-reward accuracy.
"""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path

import torch

from preforch.io import atomic_write_json, atomic_write_text, read_json
from preforch.orchestrator.config import OrchestratorConfig
from preforch.pipelines.config import BenchmarkConfig
from preforch.rewards.config import EnsembleConfig, RewardModelConfig

JUDGE = "judge"


def _fresh(cfg: BenchmarkConfig, marker: Path) -> bool:
    """Whether a stage must run: overwrite, or its marker file is missing."""
    if cfg.overwrite or not marker.is_file():
        return True
    print(f"reusing {marker.parent}", flush=True)
    return False


def reward_model_config(cfg: BenchmarkConfig, judge: bool) -> RewardModelConfig:
    """The training reward models (validation slice held out) or the judge's (held-out pairs, read on training ones)."""
    out = Path(cfg.output_dir) / (JUDGE if judge else "") / "reward_model"
    if judge:
        return RewardModelConfig(base_model=cfg.judge_base_model or cfg.reward_base_model, objectives=cfg.objectives,
                                 train_data=cfg.judge_train_data, eval_data=cfg.judge_eval_data,
                                 max_train_pairs=cfg.max_eval_pairs,
                                 max_eval_pairs=_cap(cfg.max_judge_eval_pairs, cfg.max_train_pairs),
                                 pooling=cfg.judge_pooling, learning_rate=cfg.judge_learning_rate,
                                 epochs=cfg.judge_epochs, output_dir=str(out), seed=cfg.seed)
    return RewardModelConfig(base_model=cfg.reward_base_model, objectives=cfg.objectives, train_data=cfg.rm_train_data,
                             eval_data=[], max_train_pairs=cfg.max_train_pairs, epochs=cfg.rm_epochs, output_dir=str(out),
                             seed=cfg.seed, holdout_validation=OrchestratorConfig.validation_fraction)


def _cap(*caps: int | None) -> int | None:
    """The smallest of the caps given (None: no cap)."""
    return min((c for c in caps if c is not None), default=None)


def ensemble_config(cfg: BenchmarkConfig, judge: bool) -> EnsembleConfig:
    base = Path(cfg.output_dir) / (JUDGE if judge else "")
    return EnsembleConfig(reward_models=[str(base / "reward_model")], rules=cfg.rules,
                          reference_data=cfg.eval_data if judge else cfg.train_data,
                          max_reference_pairs=cfg.max_eval_pairs if judge else cfg.max_train_pairs,
                          objective_reference=cfg.judge_objective_reference if judge else cfg.objective_reference,
                          output_dir=str(base / "rewards"))


def orchestrator_config(cfg: BenchmarkConfig) -> OrchestratorConfig:
    return OrchestratorConfig(ensemble=str(Path(cfg.output_dir) / "rewards"), encoder=cfg.encoder, train_data=cfg.train_data,
                              eval_data=cfg.eval_data, max_train_pairs=cfg.max_train_pairs, max_eval_pairs=cfg.max_eval_pairs,
                              output_dir=str(Path(cfg.output_dir) / "orchestrator"),
                              objective=cfg.orchestrator_objective, positive_source=cfg.positive_source, seed=cfg.seed)


def weights_by_source(weights: torch.Tensor, sources: list[str], objectives: list[str]) -> dict[str, dict]:
    """Mean and standard deviation of each objective's weight over the prompts of each source: weights [N, K],
    sources [N] -> {source: {"n", "mean": {objective: float}, "std": {objective: float}}}, sources in order of
    first appearance."""
    out = {}
    for s in dict.fromkeys(sources):
        w = weights[torch.tensor([x == s for x in sources])]
        std = w.std(0) if len(w) > 1 else torch.zeros(w.shape[1])
        out[s] = {"n": len(w), "mean": dict(zip(objectives, w.mean(0).tolist())), "std": dict(zip(objectives, std.tolist()))}
    return out


def build_benchmark(cfg: BenchmarkConfig) -> dict:
    from preforch.data.loaders import check_disjoint_prompts, load_many
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.orchestrator.train import ORCHESTRATOR_METRICS, train_and_evaluate
    from preforch.rewards.ensemble import ENSEMBLE_FILE, build_ensemble
    from preforch.rewards.training import train_reward_models

    out = Path(cfg.output_dir)
    check_disjoint_prompts(cfg.judge_train_data, cfg.eval_data, "judge_train_data")
    torch.manual_seed(cfg.seed)
    rm_metrics = {}
    for judge in (False, True):
        name = "judge" if judge else "training"
        print(f"\n=== {name} reward models, then their ensemble ===", flush=True)
        rm_cfg = reward_model_config(cfg, judge)
        if _fresh(cfg, Path(rm_cfg.output_dir) / "train_rm_config.json"):
            train_reward_models(rm_cfg)
        rm_metrics[name] = read_json(Path(rm_cfg.output_dir) / "train_rm_config.json")["metrics"]
        ens_cfg = ensemble_config(cfg, judge)
        if _fresh(cfg, Path(ens_cfg.output_dir) / ENSEMBLE_FILE):
            build_ensemble(ens_cfg)

    print("\n=== orchestrator (every source's pairs, no source labels) ===", flush=True)
    orch_cfg = orchestrator_config(cfg)
    if _fresh(cfg, Path(orch_cfg.output_dir) / ORCHESTRATOR_METRICS):
        train_and_evaluate(orch_cfg)
    orch = read_json(Path(orch_cfg.output_dir) / ORCHESTRATOR_METRICS)
    model = PreferenceOrchestrator.from_pretrained(orch_cfg.output_dir)
    held_out = load_many(cfg.eval_data, cfg.max_eval_pairs)
    result = {
        "config": asdict(cfg),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "objectives": list(model.objectives),
        "reward_models": {"training": {o: a for o, a in orch["eval"]["reward_model_accuracy"].items() if o in cfg.objectives},
                          "judge": rm_metrics["judge"]["eval_accuracy"]},
        "weights_by_source": weights_by_source(model.predict(held_out.prompts), held_out.sources, list(model.objectives)),
        "best_fixed_validation": model.metadata.get("best_fixed_validation"),
        "human_labels": orch["eval"]["human_labels"],
        "folders": {"ensemble": str(out / "rewards"), "judge": str(out / JUDGE / "rewards"),
                    "orchestrator": orch_cfg.output_dir},
    }
    atomic_write_json(out / "benchmark.json", result)
    atomic_write_text(out / "report.md", render_report(result))
    return result


def render_report(r: dict) -> str:
    objectives = r["objectives"]
    weights = ["| source | prompts | " + " | ".join(f"{o} weight (mean ± sd)" for o in objectives) + " |",
               "|" + "---|" * (len(objectives) + 2)]
    weights += [f"| {s} | {w['n']} | " + " | ".join(f"{w['mean'][o]:.3f} ± {w['std'][o]:.3f}" for o in objectives) + " |"
                for s, w in r["weights_by_source"].items()]
    labels = ["| weighting | accuracy | 95% CI |", "|---|---|---|"]
    labels += [f"| {name} | {row['accuracy']:.3f} | [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}] |"
               for name, row in r["human_labels"]["rows"].items()]
    margins = [f"- {name}: {m['margin']:+.3f} [{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]"
               for name, m in r["human_labels"].get("margins", {}).items()]
    by_source = r["human_labels"].get("by_source", {})
    names = list(r["human_labels"]["rows"])
    per_source = ["| weighting | " + " | ".join(f"{s} ({a['n']})" for s, a in by_source.items()) + " |",
                  "|" + "---|" * (len(by_source) + 1)]
    per_source += [f"| {name} | " + " | ".join(f"{a[name]:.3f}" for a in by_source.values()) + " |" for name in names]
    fixed = r["best_fixed_validation"] or {}
    accuracy = lambda d: ", ".join(f"{o} {a:.3f}" for o, a in d.items())
    f = r["folders"]
    return "\n".join([
        "# Benchmark: " + ", ".join(objectives),
        "",
        f"Ensemble `{f['ensemble']}`, judge `{f['judge']}` (reward models trained on held-out pairs, which train and "
        f"guide nothing{'; its rules ' + ', '.join(r['config']['rules']) + ' are also training rewards' if r['config'].get('rules') else ''}), "
        f"orchestrator `{f['orchestrator']}` (trained on {', '.join(r['config']['train_data'])} without source labels).",
        "",
        f"Held-out pairwise accuracy: training reward models {accuracy(r['reward_models']['training'])}; judge "
        f"{accuracy(r['reward_models']['judge'])} (on the training pairs).",
        "",
        "## The orchestrator's weights by source (held-out prompts)",
        "",
        *weights,
        "",
        "Best fixed vector, chosen on the validation slice: " + ", ".join(f"{o} {v:.2f}" for o, v in fixed.items()),
        "",
        f"## Combined-reward accuracy on {r['human_labels']['num_pairs']} held-out human labels",
        "",
        *labels,
        "",
        "Paired-bootstrap margins (same pairs):",
        "",
        *margins,
        "",
        *(["Accuracy on each source alone (a source every weighting gets right says little about the others):", "",
           *per_source, ""] if by_source else []),
    ])
