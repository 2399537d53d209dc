"""The orchestrator's training targets, ablated (PRO's reviewers asked): the paper's Eq. 7 softmax over *raw* reward
scores against this project's default over z-scores, at several target temperatures tau, beside the default
Bradley-Terry objective; each a new head on the stack's frozen encoder with the stack's other settings.

    python benchmarks/orchestrator_targets.py --orchestrator runs/mixed_intent_independent/orchestrator

Reports, per variant, held-out human-label accuracy (95% CI) and its paired margin over best fixed (validation), the
KL of the calibrated weights to the default targets, their entropy by source, and the weight of each source's own
objective (the harmless weight on harmful prompts: reward models are not calibrated against each other, and a
harmful prompt's harmless score is low, so raw targets can give harmlessness less weight exactly there); the
uncalibrated (T = 1) weights too, as the paper has no calibration. Writes results/orchestrator_targets.json.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from _common import save

from preforch.data.loaders import load_many
from preforch.orchestrator.human_labels import source_oracle_weights
from preforch.orchestrator.preference import load_orchestrator
from preforch.pipelines.config import RobustnessConfig
from preforch.pipelines.robustness import orchestrator_settings, refit
from preforch.rewards.ensemble import RewardEnsemble

UNCALIBRATED = "orchestrator (T = 1, uncalibrated)"


def own_weights(by_source: dict, objectives: list[str]) -> dict:
    """{source: the mean weight of the objective the source names} from mean weights by source."""
    return {s: w[objectives[int(source_oracle_weights([s], objectives).argmax())]] for s, w in by_source.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orchestrator", default="runs/mixed_intent_independent/orchestrator")
    ap.add_argument("--taus", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    settings = orchestrator_settings(RobustnessConfig(orchestrator=args.orchestrator))
    ensemble = RewardEnsemble.load(settings.ensemble)
    objectives = list(ensemble.objectives)
    trained = load_orchestrator(args.orchestrator, objectives)
    train_data = load_many(settings.train_data, settings.max_train_pairs)
    held_out = load_many(settings.eval_data, settings.max_eval_pairs)
    variants = {f"{settings.objective} (stack default)": settings}
    variants.update({f"kl, {targets} targets, tau {tau:g}": replace(settings, objective="kl", targets=targets, tau=tau)
                     for targets in ("normalized", "raw") for tau in args.taus})
    rows = {}
    for name, variant in variants.items():
        print(f"orchestrator_targets: {name}", flush=True)
        ev = refit(variant, ensemble, trained, train_data, held_out)
        labels, sharp = ev["human_labels"], ev["sharpness"]
        calibrated = next(k for k in sharp if k.endswith(", calibrated)"))
        uncalibrated = UNCALIBRATED if UNCALIBRATED in sharp else calibrated  # absent when T was fitted to 1
        rows[name] = {
            "accuracy": labels["rows"]["orchestrator"]["accuracy"], "ci95": labels["rows"]["orchestrator"]["ci95"],
            "margin_over_best_fixed": labels["margins"]["orchestrator - best fixed (validation)"],
            "temperature": ev["temperature"], "kl_to_default_targets": sharp[calibrated]["kl_to_targets"],
            "entropy": sharp[calibrated]["entropy"],
            "own_objective_weight": own_weights(sharp[calibrated]["mean_weights_by_source"], objectives),
            "uncalibrated": {"accuracy": labels["rows"][uncalibrated.replace(", calibrated", "")]["accuracy"]
                             if uncalibrated == UNCALIBRATED else labels["rows"]["orchestrator"]["accuracy"],
                             "own_objective_weight": own_weights(sharp[uncalibrated]["mean_weights_by_source"], objectives)},
        }
    save("orchestrator_targets", {"orchestrator": args.orchestrator, "held_out_pairs": len(held_out),
                                  "objectives": objectives, "variants": rows}, args.tag)


if __name__ == "__main__":
    main()
