"""report.md of `preforch headline`, from its headline.json record."""

from __future__ import annotations

from preforch.evaluation.report import markdown_table, number


def ci(stat: dict, bold: bool = False) -> str:
    """'+0.012 [-0.030, +0.055]' from a bootstrap entry {"mean", "ci95": [lo, hi]}; bolded when asked."""
    text = f"{stat['mean']:+.3f} [{stat['ci95'][0]:+.3f}, {stat['ci95'][1]:+.3f}]"
    return f"**{text}**" if bold else text


def _floor(stat: dict) -> str:
    return f"±{abs(stat['mean']) + (stat['ci95'][1] - stat['ci95'][0]) / 2:.3f}"


def render_report(r: dict) -> str:
    c, objectives, seeds = r["config"], r["objectives"], r["config"]["seeds"]
    sources = list(r["own_objective"])
    judge = [[o, f"{a['accuracy']:.3f}", "near chance: not headlined" if a["near_chance"] else "above chance"]
             for o, a in r["judge"]["accuracy"].items()]
    judge += [[o, "rule", "exact: it also scored training (the training ensemble holds the same rule)"]
              for o in r["judge"]["rules"]]
    primary = [[signal, *(ci(s["primary"]["per_seed"][seed]["overall"]) for seed in seeds),
                ci(s["primary"]["pooled"]["overall"], s["primary"]["bold"]), _floor(s["primary"]["noise_floor"])]
               for signal, s in r["signals"].items()]
    by_source = [[signal, *(ci(s["primary"]["pooled"][src]) for src in sources)] for signal, s in r["signals"].items()]
    comparisons = [[signal, name, ci(cmp["pooled"]["overall"], cmp["bold"]), _floor(cmp["noise_floor"]),
                    *(ci(cmp["pooled"][src]) for src in sources)]
                   for signal, s in r["signals"].items() for name, cmp in s["comparisons"].items()]
    inter = [[signal, ci(s["interaction"]["benign"]), ci(s["interaction"]["harmful"]),
              "yes" if s["interaction"]["both_positive"] else "no"]
             for signal, s in r["signals"].items() if s["interaction"]]
    mcn = [[signal, seed, src, m["a_only"], m["b_only"], f"{m['p_value']:.3f}"]
           for signal, s in r["signals"].items() for seed, by_src in s["mcnemar"].items() for src, m in by_src.items()]
    policies = [["initial", "-", *(ci(r["initial"]["own_objective"][src]) for src in sources),
                 ", ".join(f"{src} {v:.1%}" for src, v in r["initial"]["right"].items()), "-"]]
    policies += [[arm, seed, *(ci(a["own_objective"][seed][src]) for src in sources),
                  ", ".join(f"{src} {v:.1%}" for src, v in a["right"][seed].items()), ci(a["vs_initial"]["overall"])]
                 for arm, a in r["arms"].items() for seed in seeds]
    weights = [[arm, src, *(f"{a['weights']['mean'][src][o]:.3f}" for o in objectives),
                f"{a['weights']['entropy'][src]['mean']:.3f}"] for arm, a in r["arms"].items() for src in sources]
    weights += [[arm, spec, *(f"{w['mean'][spec][o]:.3f}" for o in objectives), f"{w['entropy'][spec]['mean']:.3f}"]
                for arm, a in r["arms"].items() for spec, w in a["weight_data"].items()]
    cost = [[arm, seed, a["cost"][seed]["steps"], number(a["cost"][seed]["seconds_per_step"], ".1f"),
             number(a["cost"][seed].get("peak_cuda_mb", a["cost"][seed].get("peak_rss_mb")), ".0f")]
            for arm, a in r["arms"].items() for seed in seeds]
    named = ", ".join(f"{s} -> {o}" for s, o in r["own_objective"].items())
    return "\n".join([
        "# PRO's headline test: " + ", ".join(r["signals"]),
        "",
        f"Arms {', '.join(c['methods'])}, each trained from `{c['policy']}` under training seeds "
        f"{', '.join(map(str, seeds))} for {c['max_steps']} steps (batch {c['per_device_train_batch_size']}, "
        f"{c['num_generations']} samples or candidates per prompt of up to {c['max_completion_length']} tokens, "
        f"learning rate {c['learning_rate']}, KL / DPO beta {c['beta']}, LoRA {c['use_lora']}) on "
        f"{', '.join(c['train_data'])} ({c['max_prompts']} prompts per source), rewarded by `{c['ensemble']}` under "
        f"the weights of `{c['orchestrator']}`. Held out: {r['num_prompts']} prompts "
        f"({', '.join(f'{s} {n}' for s, n in r['prompts_by_source'].items())}) from {', '.join(c['eval_data'])}, "
        f"none opening with a training prompt's first human turn, drawn and answered (temperature "
        f"{c['eval_temperature']}) with evaluation seed {c['eval_seed']}, the same for every arm and seed. Judge: "
        f"`{r['judge']['folder']}`. Machine: {r['machine']['processor']}, {r['machine']['threads']} threads.",
        "",
        f"Each prompt is judged on its source's objective ({named}), z-scored by the judge's statistics.",
        "",
        "## The judge's own held-out accuracy",
        "",
        markdown_table(["objective", "pairwise accuracy", "reading"], judge),
        "",
        "## Primary metric: Pro minus best fixed (validation), mean of source means, 95% CI",
        "",
        "Bootstrap over prompts stratified by source; pooled: each prompt's mean difference over the seeds. Bold only "
        "when the CI excludes 0 and the difference exceeds the noise floor (the larger arm's seed-to-seed "
        "difference, mean plus half-width).",
        "",
        markdown_table(["signal", *(f"seed {s}" for s in seeds), "pooled", "noise floor"], primary),
        "",
        "By source, pooled:",
        "",
        markdown_table(["signal", *sources], by_source),
        "",
        "## Every arm against each fixed-weight arm (pooled over seeds)",
        "",
        markdown_table(["signal", "comparison", "overall", "noise floor", *sources], comparisons),
        "",
        "## Interaction: Pro's gain in helpfulness on benign prompts and in harmlessness on harmful ones",
        "",
        "Both positive (lower bounds above 0) is what a global shift toward one objective cannot produce.",
        "",
        markdown_table(["signal", "helpful on benign", "harmless on harmful", "both positive"], inter),
        "",
        "## McNemar on exact match (Pro vs best fixed, paired per problem)",
        "",
        markdown_table(["signal", "seed", "source", "Pro right only", "best fixed right only", "p (exact)"], mcn),
        "",
        "## Each policy on each source (own objective, z) and its exact-match rate",
        "",
        markdown_table(["policy", "seed", *sources, "right answers", "vs initial, pooled"], policies),
        "",
        "## The weights each arm trains under, and their entropy (nats; ln 3 = 1.099 is uniform)",
        "",
        markdown_table(["arm", "prompts", *(f"{o} weight" for o in objectives), "entropy"], weights),
        "",
        "## Cost",
        "",
        markdown_table(["arm", "seed", "steps", "seconds per step", "peak memory (MiB)"], cost),
        "",
        f"Every evaluated reply with its judge's scores: `{r['replies']}`; re-judge them with "
        f"`preforch rejudge --replies {r['replies']} --judge <ensemble folder> --output_dir <folder>`.",
        "",
    ])
