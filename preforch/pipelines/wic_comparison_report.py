"""report.md of `preforch wic-compare`, from its wic_comparison.json record."""

from __future__ import annotations

from preforch.evaluation.report import markdown_table, number, objective_cell, steering_gain


def _setup(r: dict) -> str:
    c = r["config"]
    text = (f"Start `{c['policy']}`, offline data {', '.join(c['train_data'])} ({c['max_pairs']} pairs per spec; chosen "
            f"and rejected replies), {c['max_steps']} offline SFT steps; online: {c['iterations']} round(s) of "
            f"{c['online_prompts']} prompts x {c['num_generations']} samples, filter quantile {c['filter_quantile']}, "
            f"{c['offline_mix']} offline samples mixed in, {c['sft_steps_per_iteration']} SFT steps per round (RiC-offline and "
            f"Pro-WiC-offline get the same steps on offline data); batch {c['per_device_train_batch_size']}, learning rate "
            f"{c['learning_rate']}, LoRA {c['use_lora']}, seed {c['seed']}.")
    if c["expert_data"]:
        steps = {o: t["steps"] for o, t in r["experts"]["training"].items()}
        text += (f" Soups and MOD: one LoRA expert (rank {c['lora_r']}) per objective, DPO on "
                 f"{', '.join(f'{o}: {d}' for o, d in zip(r['objectives'], c['expert_data']))} "
                 f"({c.get('expert_pairs') or c['max_pairs'] or 'all'} pairs per spec), "
                 f"steps {steps}, learning rate {c['expert_learning_rate']}; the two arms serve the one expert set.")
    eval_seed = c["seed"] if c.get("eval_seed") is None else c["eval_seed"]  # records before eval_seed have none
    return text + (f" Held-out: {c['eval_prompts_per_source']} prompts per source of {', '.join(c['eval_data'])} "
                   f"(drawn with seed {eval_seed}), one "
                   f"answer per preference at temperature {c['eval_temperature']} (0: greedy), judged by `{r['judge']}`; "
                   f"reference point {r['reference_point']}.")


def _experts_lines(r: dict) -> list[str]:
    if not r.get("experts"):
        return []
    table = r["experts"]["heldout_accuracy"]
    objectives = list(next(iter(table.values())))
    return ["## The experts on held-out pairs", "",
            "Implicit-reward accuracy `beta log(pi_expert / pi_base)` of each expert (row) on each objective's held-out "
            f"pairs (column; {r['experts']['heldout_pairs']} pairs); the diagonal should lead its column.", "",
            markdown_table(["expert", *objectives], [[e, *(row[o]["accuracy"] for o in objectives)] for e, row in table.items()]),
            ""]


def _steering_cell(m: dict) -> str:
    return (f"{number(m['spearman'], '.2f')} / {number(m['non_decreasing_steps'], '.2f')} / "
            f"{number(m['reward_at_lowest'])} -> {number(m['reward_at_highest'])} / {steering_gain(m)}")


def render_report(r: dict) -> str:
    objectives, arms = r["objectives"], r["arms"]
    return "\n".join([
        "# Preference in the prompt vs per-objective experts: " + ", ".join(arms),
        "",
        _setup(r),
        "",
        "![fronts](compare/front.png)",
        "",
        "## Hypervolume and rewards at equal weights (mean ± 95% CI)",
        "Each objective over the held-out prompts it applies to (n = how many, where not all; e.g. exact match on the "
        "problems only).",
        "",
        markdown_table(["arm", "hypervolume", *objectives],
                       [[a, f"{d['hypervolume']:.4f}", *(objective_cell(d["equal_weights"], o, d["num_prompts"])
                                                         for o in objectives)] for a, d in arms.items()]),
        "",
        "With the orchestrator choosing each prompt's preference:",
        "",
        markdown_table(["arm", *objectives, "combined (its weights)"],
                       [[a, *(objective_cell(d["orchestrator_weights"], o, d["num_prompts"]) for o in objectives),
                         f"{number(d['orchestrator_weights']['combined']['mean'])} ± "
                         f"{number(d['orchestrator_weights']['combined']['ci95'])}"]
                        for a, d in arms.items() if d["orchestrator_weights"]]),
        "",
        "## Steering: raising the requested weight of an objective should raise its reward",
        "",
        "Per objective: Spearman correlation over the grid / fraction of non-decreasing steps / mean reward at w=0 -> "
        "w=1 / gain from w=0 to w=1 paired on prompts (mean ± 95% CI).",
        "",
        markdown_table(["arm", *objectives],
                       [[a, *(_steering_cell(d["steering"][o]) for o in objectives)] for a, d in arms.items()]),
        "",
        "Does each WiC policy read its tag? Held-out replies' mean token NLL under another reply's tag minus under "
        "their own (paired, nats/token; above 0: it reads the tag):",
        "",
        markdown_table(["arm", "gap (mean ± 95% CI)"],
                       [[a, f"{d['tag_reading']['gap']:+.4f} ± {number(d['tag_reading']['gap_ci95'], '.4f')}"]
                        for a, d in arms.items() if d["tag_reading"]]),
        "",
        *_experts_lines(r),
        "## Compute",
        "",
        "Training only (judging excluded). Steps are SFT steps for the WiC arms and DPO steps summed over the experts "
        "for soups and mod, which share them; tokens are the training batches' tokens.",
        "",
        markdown_table(["arm", "generated", "kept fraction", "steps", "tokens", "wall s (train)"],
                       [[a, d["compute"]["generated"], "-" if d["compute"]["kept_fraction"] is None else f"{d['compute']['kept_fraction']:.2f}",
                         d["compute"]["sft_steps"], d["compute"]["sft_tokens"], f"{d['compute']['seconds']:.0f}"]
                        for a, d in arms.items()]),
        "",
        "Full per-preference tables: eval/<arm>/report.md; side by side: compare/report.md.",
        "",
    ])
