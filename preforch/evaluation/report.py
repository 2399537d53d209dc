"""Markdown report + JSON metrics + PNG plots for a quickstart run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from preforch.evaluation.pareto import mean_points
from preforch.evaluation.plots import plot_accuracy_bars, plot_curve, plot_grouped_bars, plot_weights_by_source
from preforch.io import atomic_write_json, atomic_write_text


def number(x: float | None, spec: str = ".3f") -> str:
    """A statistic as table text: 'n/a' where it is undefined (None: no prompt it applies to, too few for a CI)."""
    return "n/a" if x is None else format(x, spec)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A markdown table; floats to three decimals, None as 'n/a'."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(number(c) if c is None or isinstance(c, float) else str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def objective_cell(row: dict, objective: str, num_prompts: int, ci: bool = True) -> str:
    """An evaluation row's mean (± 95% CI) of one objective, over the prompts it applies to, with '(n=...)' where
    that is not every prompt (exact match on a mixed set: the problems only). Rows written before the count was
    kept have no 'n': every prompt."""
    n = row.get("n", {}).get(objective, num_prompts)
    text = number(row["mean"][objective]) + (f" ± {number(row['ci95'][objective])}" if ci else "")
    return text + (f" (n={n})" if n != num_prompts else "")


def write_quickstart_report(run: Path, metrics: dict, heldout_weights: torch.Tensor, heldout_sources: Sequence[str]) -> None:
    objectives = metrics["objectives"]
    plot_weights_by_source(heldout_weights, heldout_sources, objectives, run / "weights_by_source.png")
    plot_grouped_bars(metrics["best_of_n"]["by_source"], objectives, run / "best_of_n.png", "mean normalised reward of pick")
    plot_curve(metrics["reward_models"]["loss_curve"], run / "reward_model_loss.png", "reward models (Bradley-Terry)",
               "step", "loss", smooth=20)
    plot_curve(metrics["orchestrator_training"]["loss_history"], run / "orchestrator_loss.png",
               "orchestrator training", "epoch", f"mean {metrics['orchestrator_training']['objective']} loss")
    plot_accuracy_bars(metrics["orchestrator"]["human_labels"]["rows"], run / "human_label_accuracy.png",
                       "held-out human labels")
    atomic_write_json(run / "metrics.json", metrics)
    atomic_write_text(run / "report.md", render_markdown(metrics))


def human_label_lines(table: dict) -> list[str]:
    """Markdown table of combined-reward accuracy per weighting, and the orchestrator's paired margins."""
    def weights_of(r: dict) -> str:
        return " / ".join(f"{v:.2f}" for v in r["weights"].values()) if "weights" in r else "per prompt"

    lines = [markdown_table(["weighting", "weights", "accuracy", "95% CI"],
                    [[n, weights_of(r), r["accuracy"], f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"]
                     for n, r in table["rows"].items()]), ""]
    if table.get("margins"):
        lines += ["Paired-bootstrap margins (same pairs, 2,000 resamples):", "",
                  markdown_table(["comparison", "margin", "95% CI"],
                         [[n, f"{v['margin']:+.3f}", f"[{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]"] for n, v in table["margins"].items()]),
                  ""]
    return lines


def render_markdown(m: dict) -> str:
    objectives = m["objectives"]
    orch, bon, rms = m["orchestrator"], m["best_of_n"], m["reward_models"]
    kl = orch["kl"]
    auroc = orch.get("auroc", {})
    parts = [
        "# preforch quickstart report",
        "",
        f"Objectives: {', '.join(objectives)}. Machine: {m['machine']['processor']} / {m['machine']['platform']}, "
        f"{m['machine']['torch_threads']} torch threads, CUDA: {m['machine']['cuda']}.",
        "",
        "## Reward models",
        f"One `{m['config']['reward_base_model']}` backbone with a head per objective, Bradley-Terry loss with reward "
        "centering, "
        f"{rms['train_pairs']} training pairs, {rms['steps']} steps.",
        "",
        markdown_table(["objective", "held-out pairwise accuracy"], [[o, a] for o, a in rms["eval_accuracy"].items()]),
        "",
        "![reward model loss](reward_model_loss.png)",
        "",
        "## Preference Orchestrator",
        f"A head on the frozen prompt encoder `{m['config']['encoder']}` ('reward-model': the reward model's own). "
        f"Does the combined reward `w . r~` prefer what people preferred? Share of {orch['human_labels']['num_pairs']} "
        "held-out pairs where `w . (r~(x, chosen) - r~(x, rejected)) > 0`, for each weighting (the orchestrator at its "
        f"calibrated temperature {orch['temperature']:g}; 'best fixed (validation)' was chosen on the validation slice "
        "of the training pairs, 'best fixed (test, ceiling)' on these same pairs; the per-source oracle puts all weight "
        "on the objective the pair's source names):",
        "",
        *human_label_lines(orch["human_labels"]),
        "![human-label accuracy](human_label_accuracy.png)",
        "",
        f"Held-out KL(w* || predictor) to the targets of Eq. 7 over {orch['num_prompts']} prompts (lower is better; "
        f"the training loss of the kl objective: an orchestrator trained with "
        f"{m['orchestrator_training']['objective']!r} is not fitted to these targets, so this is not its test):",
        "",
        markdown_table(["predictor", "KL"], [["orchestrator", kl["orchestrator"]], ["uniform", kl["uniform"]],
                                     ["constant mean target", kl["constant_mean_target"]]]),
        "",
    ]
    if auroc:
        parts += [
            f"AUROC of each objective's predicted weight for telling `{auroc['positive_source']}` prompts from the others "
            "(the orchestrator never saw source labels; 0.5 = chance, < 0.5 = weight higher on the other source):",
            "",
            markdown_table(["objective", "AUROC"], [[o, v] for o, v in auroc["per_objective"].items()]),
            "",
            markdown_table(["source", *objectives], [[s, *w.values()] for s, w in orch["mean_weights_by_source"].items()]),
            "",
            "![weights by source](weights_by_source.png)",
            "",
        ]
    parts += [
        "Predicted weights for example prompts:",
        "",
        markdown_table(["prompt", *objectives], [[p, *w.values()] for p, w in m["example_weights"].items()]),
        "",
        "![orchestrator loss](orchestrator_loss.png)",
        "",
        "## Best-of-N: orchestrator weights vs uniform weights",
        f"{bon['num_prompts']} held-out prompts, {bon['num_candidates']} candidates each from the policy; the same "
        "candidates are reranked by `sum_i w_i r~_i` with each weighting. Mean normalised reward of the picked "
        f"response (z-scores). The two weightings pick different responses on {100 * bon['selection_differs_fraction']:.0f}% of prompts.",
        "",
    ]
    for src, rows in bon["by_source"].items():
        parts += [f"Prompts from `{src}`:", "", markdown_table(["selection", *objectives], [[n, *v.values()] for n, v in rows.items()]), ""]
    parts += ["![best of n](best_of_n.png)", "", "Examples:", ""]
    for e in bon["examples"]:
        w = ", ".join(f"{o} {v:.2f}" for o, v in e["weights"].items())
        parts += [f"- **[{e['source']}]** {e['prompt'][:200]!r}  (weights: {w})",
                  f"  - orchestrator pick: {e['orchestrator_pick'][:300]!r}",
                  f"  - uniform pick: {e['uniform_pick'][:300]!r}"]
    parts += ["", "## Time (seconds)", "", markdown_table(["stage", "s"], [[k, v] for k, v in m["timings_s"].items()]), ""]
    return "\n".join(parts)


def on_front(result: dict) -> list[str]:
    """The objectives a result's front and hypervolume are over (all of them in results written before some could
    be left out)."""
    return result.get("front_objectives", result["objectives"])


def _markers(result: dict, objectives: Sequence[str], prefix: str = "") -> dict:
    """Each single weighting's mean point on `objectives`, where it has one on each."""
    return {prefix + r["label"]: [r["mean"][o] for o in objectives] for r in result["rows"]
            if all(r["mean"][o] is not None for o in objectives)}


def steering_gain(m: dict) -> str:
    """A steering entry's paired gain as 'mean ± CI' ('-' for results written before it was measured)."""
    return f"{number(m['gain'])} ± {number(m['gain_ci95'])}" if "gain" in m else "-"


def _steering_cell(m: dict | None) -> str:
    return "-" if m is None else f"{number(m['spearman'], '.2f')} / {steering_gain(m)}"


def _left_out(result: dict) -> str:
    """The sentence naming objectives left out of the front ('' when none is)."""
    out = [o for o in result["objectives"] if o not in on_front(result)]
    return f" Left out of the front and hypervolume, applying to no evaluated prompt: {', '.join(out)}." if out else ""


def _tag_reading_lines(t: dict | None) -> list[str]:
    if t is None:
        return []
    return ["## Does the policy read its tag?",
            f"Mean token NLL of {t['replies']} held-out replies under the tag of their own judged scores: "
            f"{t['nll_own_tag']:.4f}; under another reply's tag: {t['nll_mismatched_tag']:.4f}. Paired gap "
            f"(mismatched - own): **{t['gap']:+.4f} ± {number(t['gap_ci95'], '.4f')}** nats/token; above 0 means it reads the tag.",
            ""]


def write_evaluation_report(folder: Path, result: dict) -> None:
    from preforch.evaluation.plots import plot_fronts

    objectives, front, p = result["objectives"], on_front(result), result["num_prompts"]
    plot_fronts({result["method"]: mean_points(result["grid"], front)}, _markers(result, front), front,
                folder / "front.png")
    c = result["compute"]
    generation = "cache hit" if c["cache_hit"] else f"{c['generated']} sampled in {c['generation_s']:.1f} s"
    lines = [
        "# preforch evaluation",
        "",
        f"Policy `{result['policy']}`, method `{result['method']}` ({result['num_candidates']} candidate(s) per prompt), "
        f"{result['num_prompts']} prompts from {', '.join(result['sources'])}, judged by `{result['judge']}`.",
        f"Hypervolume of the grid's mean rewards: **{result['hypervolume']:.4f}** "
        f"(reference point {result['reference_point']}).{_left_out(result)}",
        "",
        "![front](front.png)",
        "",
        "## Mean judge reward per preference (± 95% CI), * = on the Pareto front",
        f"Each objective over the prompts it applies to (n = how many, where not all {p}).",
        "",
        markdown_table(["preference", *objectives], [[("* " if r["on_front"] else "") + r["label"],
                                                      *(objective_cell(r, o, p) for o in objectives)]
                                                     for r in result["grid"]]),
        "",
        markdown_table(["weighting", *objectives, "combined (own weights)"],
               [[r["label"], *(objective_cell(r, o, p) for o in objectives),
                 f"{number(r['combined']['mean'])} ± {number(r['combined']['ci95'])}"] for r in result["rows"]]),
        "",
        "## Steering: does asking for more of an objective give more of it?",
        "Over the grid: rank correlation of each requested weight with its objective's mean reward, the fraction of "
        "steps up in that weight where the reward did not fall, the reward at its lowest and highest weight, and the "
        "gain from lowest to highest paired on prompts (mean ± 95% CI; a CI clear of 0 is significant steering).",
        "",
        markdown_table(["objective", "Spearman", "non-decreasing steps", "reward at lowest w", "reward at highest w", "gain"],
               [[o, m["spearman"], m["non_decreasing_steps"], m["reward_at_lowest"], m["reward_at_highest"],
                 steering_gain(m)] for o, m in result["steering"].items()]),
        "",
        *_tag_reading_lines(result.get("tag_reading")),
        "## Alignment gap (paper Sec. 5, measured)",
        "Combined reward w*(x) . r~ lost by picking with a weighting instead of each prompt's oracle weights "
        "w*(x) (from its preferred reply); lower is better, 0 is the oracle.",
        "",
        markdown_table(["weighting", "mean gap", "± 95% CI"], [[n, g["mean"], g["ci95"]] for n, g in result["alignment_gap"].items()])
        if result["alignment_gap"] else "Not defined for this policy: it samples anew for each preference, so it has no "
                                        "shared candidates to pick from under the oracle weights.",
        "",
        "## Compute",
        f"Generations: {generation} (key {c['cache_key']}); scoring: {c['responses_scored']} responses in {c['scoring_s']:.1f} s; "
        f"total {c['total_s']:.1f} s.",
        "",
    ]
    atomic_write_json(folder / "evaluation.json", result)
    atomic_write_text(folder / "report.md", "\n".join(lines))


def write_comparison(folder: Path, results: dict[str, dict]) -> dict:
    """Side-by-side report of evaluation runs that share objectives and reference point."""
    from preforch.evaluation.plots import plot_fronts

    first = next(iter(results.values()))
    objectives, front = first["objectives"], on_front(first)
    markers = {}
    for name, r in results.items():
        markers.update(_markers(r, front, f"{name}: "))
    plot_fronts({name: mean_points(r["grid"], front) for name, r in results.items()}, markers, front, folder / "front.png")
    summary = {
        name: {"method": r["method"], "policy": r["policy"], "judge": r["judge"], "num_prompts": r["num_prompts"],
               "hypervolume": r["hypervolume"], "alignment_gap": {k: g["mean"] for k, g in r["alignment_gap"].items()},
               "rows": {row["label"]: {**row["mean"], "combined": row["combined"]["mean"]} for row in r["rows"]},
               "compute": r["compute"],
               "config": r["config"]}
        for name, r in results.items()
    }
    gap_names = sorted({g for s in summary.values() for g in s["alignment_gap"]})
    lines = [
        "# preforch comparison",
        "",
        f"Objectives: {', '.join(objectives)}; hypervolume reference point {first['reference_point']}.{_left_out(first)}",
        "",
        "![fronts](front.png)",
        "",
        markdown_table(["run", "method", "policy", "judge", "prompts", "hypervolume"],
               [[n, s["method"], s["policy"], s["judge"], s["num_prompts"], s["hypervolume"]] for n, s in summary.items()]),
        "",
        "Mean judge reward of single weightings (each objective over the prompts it applies to; n where not all):",
        "",
        markdown_table(["run", "weighting", *objectives, "combined (own weights)"],
               [[n, row["label"], *(objective_cell(row, o, r["num_prompts"], ci=False) for o in objectives),
                 row["combined"]["mean"]] for n, r in results.items() for row in r["rows"]]),
        "",
        "Steering (Spearman rank correlation of each requested weight with its objective's mean reward over the grid; "
        "gain from its lowest to highest weight, paired on prompts, mean ± 95% CI):",
        "",
        markdown_table(["run", *objectives], [[n, *[_steering_cell(r.get("steering", {}).get(o)) for o in objectives]]
                                      for n, r in results.items()]),
        "",
        "Alignment gap (lower is better):",
        "",
        markdown_table(["run", *gap_names], [[n, *[s["alignment_gap"].get(g, float("nan")) for g in gap_names]] for n, s in summary.items()]),
        "",
        "Compute:",
        "",
        markdown_table(["run", "generated", "generation s", "scored", "scoring s", "total s"],
               [[n, s["compute"]["generated"], s["compute"]["generation_s"], s["compute"]["responses_scored"],
                 s["compute"]["scoring_s"], s["compute"]["total_s"]] for n, s in summary.items()]),
        "",
    ]
    comparison = {"objectives": objectives, "reference_point": first["reference_point"], "runs": summary}
    atomic_write_json(folder / "comparison.json", comparison)
    atomic_write_text(folder / "report.md", "\n".join(lines))
    return comparison
