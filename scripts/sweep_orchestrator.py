"""The orchestrator choices of docs/design.md, measured on one set of reward scores and frozen prompt features.

    .venv/bin/python scripts/sweep_orchestrator.py RUN/rewards/reward_model --output sweep.json
    # the prompt encoder as a choice too: the bundled MiniLM vs the reward model's own fine-tuned encoder
    .venv/bin/python scripts/sweep_orchestrator.py RUN/rewards/reward_model --objectives bradley-terry \
        --encoders minilm RUN/rewards/reward_model/encoder

Builds the reward model's ensemble (+ the conciseness rule) with z-scores fitted on the HH training pairs,
scores those pairs once as the model sees them (memorised) and, with `--cross_fit` (needs `train-rm
--cross_fit_folds 2`), once cross-fitted; embeds the prompts once; then fits one orchestrator head per
(objective, tau, cross-fit) exactly as `train-orchestrator` does (fit, calibrate on the validation slice)
for every prompt encoder in `--encoders`, and reports the calibrated temperature, the validation accuracy,
the held-out human-label table and the weights of the quickstart's example prompts.
Choices are made on validation; held-out numbers are reported, not used to choose.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from preforch.config import HH_TEST, HH_TRAIN
from preforch.data.loaders import load_many
from preforch.data.schema import as_messages, content_key, validation_split
from preforch.io import atomic_write_json
from preforch.orchestrator.config import OrchestratorConfig
from preforch.orchestrator.fit import calibrate, fit_orchestrator
from preforch.orchestrator.human_labels import human_label_table
from preforch.orchestrator.model import PreferenceOrchestrator
from preforch.orchestrator.targets import implicit_preference_weights
from preforch.pipelines.quickstart import EXAMPLE_PROMPTS
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.sources import HFRewardModel, RuleReward


def frozen_orchestrator(encoder: str, objectives, prompts, max_length: int) -> PreferenceOrchestrator:
    """An orchestrator on `encoder` whose `embed` looks features up: every variant trains on the same frozen
    features, so each prompt is encoded once."""
    orch = PreferenceOrchestrator.from_encoder(encoder, objectives, max_length=max_length)
    by_prompt = {content_key(p): f for p, f in zip(prompts, orch.embed(prompts, progress=True))}
    orch.embed = lambda prompts, batch_size=64, progress=False: torch.stack([by_prompt[content_key(p)] for p in prompts])
    return orch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reward_model")
    ap.add_argument("--output", default="orchestrator_sweep.json")
    ap.add_argument("--taus", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--cross_fit", action="store_true", help="also score cross-fitted (needs fold models)")
    ap.add_argument("--objectives", nargs="+", default=["kl", "hybrid", "bradley-terry"])
    ap.add_argument("--encoders", nargs="+", default=["minilm"], help="frozen prompt encoders to compare")
    ap.add_argument("--max_length", type=int, default=OrchestratorConfig.max_length, help="prompt tokens the encoder reads")
    args = ap.parse_args()

    ensemble = RewardEnsemble([HFRewardModel(args.reward_model), RuleReward("conciseness", "conciseness")])
    train, test = load_many(HH_TRAIN), load_many(HH_TEST)
    ensemble.fit_normalization(train)
    scores = {False: ensemble.score_pairs(train, progress=True)}
    if args.cross_fit:
        from preforch.rewards.crossfit import cross_fitted_pair_scores

        scores[True] = cross_fitted_pair_scores(ensemble, train, progress=True)
    test_chosen, test_rejected = ensemble.score_pairs(test, progress=True)

    train_idx, val_idx = validation_split(train, 0.1)
    examples = [as_messages(p, "example") for p in EXAMPLE_PROMPTS]
    variants = [(o, tau) for o in args.objectives for tau in (args.taus if o != "bradley-terry" else [1.0])]
    results = []
    for encoder in args.encoders:
        orch = frozen_orchestrator(encoder, ensemble.objectives, train.prompts + test.prompts + examples,
                                   args.max_length)
        for objective, tau in variants:
            for cross_fit, (chosen, rejected) in scores.items():
                cfg = OrchestratorConfig(objective=objective, tau=tau, cross_fit=cross_fit)
                nn.init.zeros_(orch.head.weight)
                nn.init.zeros_(orch.head.bias)
                orch.set_temperature(1.0)
                delta = chosen - rejected
                targets = implicit_preference_weights(chosen[train_idx], tau)
                fit_orchestrator(orch, train.subset(train_idx).prompts, targets, delta[train_idx], cfg, progress=False)
                val = calibrate(orch, train.subset(val_idx), delta[val_idx], fit=True)
                best_val = torch.tensor(list(orch.metadata["best_fixed_validation"].values()))
                predicted = orch.predict(test.prompts)
                table = human_label_table(test_chosen - test_rejected, ensemble.objectives,
                                          {"orchestrator": predicted, "best fixed (validation)": best_val}, test.sources)
                row = {"encoder": encoder, "max_length": args.max_length, "objective": objective, "tau": tau, "cross_fit": cross_fit,
                       "temperature": orch.temperature,
                       "validation_accuracy": val["human_labels"]["rows"]["orchestrator"]["accuracy"],
                       "validation_label_nll": min(val["label_nll_by_temperature"].values()),
                       "test": {k: v["accuracy"] for k, v in table["rows"].items()}, "margins": table["margins"],
                       "best_fixed_validation": orch.metadata["best_fixed_validation"],
                       "mean_weights_by_source": {s: predicted[[x == s for x in test.sources]].mean(0).tolist()
                                                  for s in dict.fromkeys(test.sources)},
                       "example_weights": dict(zip(EXAMPLE_PROMPTS, orch.predict(examples).tolist()))}
                results.append(row)
                print(json.dumps({k: row[k] for k in ("encoder", "objective", "tau", "cross_fit", "temperature",
                                                      "validation_accuracy", "validation_label_nll")}
                                 | {"test_orchestrator": row["test"]["orchestrator"]}), flush=True)
    atomic_write_json(args.output, {"reward_model": args.reward_model, "variants": results})


if __name__ == "__main__":
    main()
