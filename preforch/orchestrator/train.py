"""`train-orchestrator` as one library call: targets -> fit -> calibrate -> save -> held-out evaluation."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from preforch.data.loaders import load_many
from preforch.hub import push_folder, write_model_card
from preforch.io import atomic_write_json
from preforch.models import is_main_process
from preforch.orchestrator.config import OrchestratorConfig
from preforch.rewards.ensemble import RewardEnsemble

ORCHESTRATOR_METRICS = "train_metrics.json"


def train_and_evaluate(cfg: OrchestratorConfig, ensemble: RewardEnsemble | None = None, progress: bool = True,
                       others: dict | None = None, model=None) -> dict:
    """Train an orchestrator per `cfg`, save it to `cfg.output_dir`, evaluate it on `cfg.eval_data`.

    `ensemble` reuses a loaded ensemble (and its score cache) instead of loading `cfg.ensemble`; `others`
    (row name -> orchestrator) are evaluated beside it on the same held-out pairs; `model` is an untrained
    orchestrator to fit instead of a new one on `cfg.encoder` (see `PreferenceOrchestrator.sibling`). Returns
    {"config", "training", "eval"}; `train_metrics.json` holds the same and is written last, so its
    presence marks a finished run. Under torchrun only the main process saves and evaluates ({} elsewhere).
    """
    from preforch.orchestrator.evaluate import evaluate_orchestrator
    from preforch.orchestrator.fit import train_orchestrator

    ensemble = ensemble or RewardEnsemble.load(cfg.ensemble)
    model, info = train_orchestrator(cfg, ensemble, load_many(cfg.train_data, cfg.max_train_pairs), progress, model)
    if not is_main_process():
        return {}
    model.metadata["mean_train_target"] = info["mean_target"]
    model.save_pretrained(cfg.output_dir)
    result = {"config": asdict(cfg), "training": info}
    if cfg.eval_data:
        result["eval"] = evaluate_orchestrator(model, ensemble, load_many(cfg.eval_data, cfg.max_eval_pairs),
                                               torch.tensor(info["mean_target"]), cfg.positive_source, others=others)
    labels = result.get("eval", {}).get("human_labels", {}).get("rows", {})
    write_model_card(cfg.output_dir, "orchestrator", cfg.encoder, cfg.train_data, model.objectives,
                     {f"combined-reward accuracy on held-out human labels, {name}": labels[name]["accuracy"]
                      for name in ("orchestrator", "uniform", "best fixed (validation)") if name in labels},
                     f"{cfg.objective} objective on the {cfg.encoder} encoder's prompt features, targets from the reward "
                     f"ensemble {cfg.ensemble} on {', '.join(cfg.train_data)} ({cfg.targets} scores, tau {cfg.tau}, "
                     f"{info['train_prompts']} prompts, {cfg.num_epochs} epochs, seed {cfg.seed}); calibrated temperature "
                     f"{model.temperature:g}.")
    atomic_write_json(Path(cfg.output_dir) / ORCHESTRATOR_METRICS, result)
    if cfg.push_to_hub:
        print(f"pushed {cfg.output_dir} to {push_folder(cfg.output_dir, cfg.hub_model_id)}", flush=True)
    return result
