"""Held-out evaluation of an orchestrator (`preforch eval-orchestrator`)."""

from __future__ import annotations

import torch

from preforch.data.schema import PreferenceDataset
from preforch.evaluation.metrics import kl_against_baselines, source_auroc, top_objective_calibration
from preforch.orchestrator.fit import preference_targets
from preforch.orchestrator.model import PreferenceOrchestrator
from preforch.rewards.ensemble import RewardEnsemble, check_objectives


def evaluate_orchestrator(model: PreferenceOrchestrator, ensemble: RewardEnsemble, held_out: PreferenceDataset,
                          train_targets_mean: torch.Tensor, positive_source: str | None = None,
                          dump_weights: str | None = None) -> dict:
    """KL on held-out targets vs uniform and constant-mean predictors, top-objective calibration, and
    prompt-source AUROC.

    `train_targets_mean` [K] is the constant predictor (the mean training target). AUROC is reported
    when `held_out` holds prompts of more than one source; `positive_source` defaults to the last one.
    `dump_weights` writes one JSON line per prompt (prompt, source, predicted and target weights).
    """
    check_objectives(ensemble.objectives, model.objectives, "orchestrator")
    targets = preference_targets(ensemble, held_out, model.tau, progress=False)
    predicted = model.predict(held_out.prompts)
    result = {
        "objectives": list(model.objectives),
        "num_prompts": len(held_out),
        "kl": kl_against_baselines(predicted, targets, train_targets_mean.reshape(1, -1)),
        "calibration": top_objective_calibration(predicted, targets),
        "mean_weights": dict(zip(model.objectives, predicted.mean(0).tolist())),
    }
    sources = held_out.sources
    distinct = list(dict.fromkeys(sources))
    if len(distinct) > 1:
        positive = positive_source or distinct[-1]
        result["auroc"] = {"positive_source": positive, "per_objective": source_auroc(predicted, sources, positive, model.objectives)}
        result["mean_weights_by_source"] = {
            s: dict(zip(model.objectives, predicted[[x == s for x in sources]].mean(0).tolist())) for s in distinct}
    if dump_weights:
        import json

        from preforch.io import atomic_write_text

        atomic_write_text(dump_weights, "".join(
            json.dumps({"prompt": p.prompt_text, "source": p.source, "predicted": dict(zip(model.objectives, w)),
                        "target": dict(zip(model.objectives, t))}, ensure_ascii=False) + "\n"
            for p, w, t in zip(held_out, predicted.tolist(), targets.tolist())))
    return result
