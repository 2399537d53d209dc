"""Held-out evaluation of an orchestrator (`preforch eval-orchestrator`)."""

from __future__ import annotations

import torch

from preforch.data.schema import PreferenceDataset
from preforch.orchestrator.calibration import tempered_weights
from preforch.orchestrator.human_labels import human_label_table, source_objective_accuracy
from preforch.orchestrator.losses import kl_per_prompt
from preforch.orchestrator.metrics import kl_against_baselines, source_auroc, top_objective_calibration, weight_entropy
from preforch.orchestrator.model import PreferenceOrchestrator
from preforch.orchestrator.targets import implicit_preference_weights
from preforch.rewards.ensemble import RewardEnsemble, check_objectives


ABLATION_TEMPERATURES = (0.1, 0.25, 0.5, 1.0)  # the weights' softmax temperature, beside the calibrated one


def sharpness(weightings: dict[str, torch.Tensor], targets: torch.Tensor, sources, objectives) -> dict[str, dict]:
    """Per weighting [N, K]: its entropy by source (nats), its KL to the held-out targets, and its mean weight per
    objective by source: how sharp each temperature makes the weights, and what that costs in fit."""
    import numpy as np

    out = {}
    for name, w in weightings.items():
        out[name] = {"entropy": weight_entropy(w.numpy(), sources), "kl_to_targets": kl_per_prompt(w, targets).mean().item(),
                     "mean_weights_by_source": {s: dict(zip(objectives, w[np.asarray(sources) == s].mean(0).tolist()))
                                                for s in dict.fromkeys(sources)}}
    return out


def evaluate_orchestrator(model: PreferenceOrchestrator, ensemble: RewardEnsemble, held_out: PreferenceDataset,
                          train_targets_mean: torch.Tensor, positive_source: str | None = None,
                          dump_weights: str | None = None, others: dict[str, PreferenceOrchestrator] | None = None) -> dict:
    """Held-out: combined-reward accuracy on the human labels (orchestrator vs uniform, each objective alone,
    the best fixed vector chosen on validation and on these pairs, the per-source oracle; paired-bootstrap
    CIs), KL to the targets vs uniform and constant-mean predictors, top-objective calibration, and
    prompt-source AUROC.

    `train_targets_mean` [K] is the constant predictor (the mean training target). AUROC is reported
    when `held_out` holds prompts of more than one source; `positive_source` defaults to the last one.
    `dump_weights` writes one JSON line per prompt (prompt, source, predicted and target weights). `others`
    (row name -> orchestrator) adds other orchestrators to the human-label table, paired on the same pairs.
    """
    check_objectives(ensemble.objectives, model.objectives, "orchestrator")
    chosen, rejected = ensemble.score_pairs(held_out)
    delta = chosen - rejected  # `Scores`: the tables below judge each pair over the objectives that apply to it
    targets = implicit_preference_weights(chosen, model.tau)
    predicted = model.predict(held_out.prompts)
    weightings = {"orchestrator": predicted}
    logits = model.logits(held_out.prompts)
    tempered = {f"orchestrator (T = {t:g}{', uncalibrated' if t == 1 else ''})": tempered_weights(logits, t)
                for t in ABLATION_TEMPERATURES if t != model.temperature}
    weightings.update(tempered)
    for name, other in (others or {}).items():
        check_objectives(ensemble.objectives, other.objectives, name)
        weightings[name] = other.predict(held_out.prompts)
    if "best_fixed_validation" in model.metadata:
        weightings["best fixed (validation)"] = torch.tensor([model.metadata["best_fixed_validation"][o] for o in model.objectives])
    result = {
        "objectives": list(model.objectives),
        "num_prompts": len(held_out),
        "temperature": model.temperature,
        "human_labels": human_label_table(delta, model.objectives, weightings, held_out.sources),
        "reward_model_accuracy": source_objective_accuracy(delta, held_out.sources, model.objectives),
        "kl": kl_against_baselines(predicted, targets, train_targets_mean.reshape(1, -1)),
        "calibration": top_objective_calibration(predicted, targets),
        "mean_weights": dict(zip(model.objectives, predicted.mean(0).tolist())),
        "sharpness": sharpness({f"orchestrator (T = {model.temperature:.3g}, calibrated)": predicted, **tempered},
                               targets, held_out.sources, model.objectives),
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
