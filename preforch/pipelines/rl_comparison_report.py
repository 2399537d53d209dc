"""report.md of `preforch rl-compare`, from its rl_comparison.json record."""

from __future__ import annotations

from preforch.evaluation.report import number, objective_cell


def _pm(stat: dict, sign: str = "+") -> str:
    return f"{number(stat['mean'], sign + '.3f')} ± {number(stat['ci95'])}"


def render_report(r: dict, initial: str) -> str:
    objectives, weightings = r["objectives"], r["weightings"]
    header = ["policy", "step", *objectives, *(f"combined, {w} w" for w in weightings)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(name: str, step: int, s: dict) -> str:
        cells = [objective_cell(s, o, r["num_prompts"]) for o in objectives]
        cells += [_pm(s["combined"][w], "") for w in weightings]
        return "| " + " | ".join([name, str(step), *cells]) + " |"

    lines.append(row(initial, 0, r["initial"]))
    lines += [row(m, d["final_step"], d["final"]) for m, d in r["methods"].items()]
    deltas = ["| method | " + " | ".join(f"Δ combined, {w} w (paired)" for w in weightings) + " |",
              "|" + "---|" * (len(weightings) + 1)]
    deltas += ["| " + m + " | " + " | ".join(_pm(d["delta_combined"][w]) for w in weightings) + " |"
               for m, d in r["methods"].items()]
    c = r["config"]
    cost = ["| method | steps | seconds per step | peak memory (MiB) |", "|---|---|---|---|"]
    cost += [f"| {m} | {d['cost']['steps']} | {number(d['cost']['seconds_per_step'], '.1f')} | "
             f"{number(d['cost'].get('peak_cuda_mb', d['cost'].get('peak_rss_mb')), '.0f')} |" for m, d in r["methods"].items()]
    return "\n".join([
        "# RL comparison: " + " vs ".join(r["methods"]),
        "",
        f"{c['algorithm'].upper()}, policy `{c['policy']}`, {c['max_steps']} steps of {c['per_device_train_batch_size']} "
        f"completions ({c['num_generations']} per prompt, up to {c['max_completion_length']} tokens), learning rate "
        f"{c['learning_rate']}, beta {c['beta']}, LoRA {c['use_lora']}, seed {c['seed']}. Training prompts: "
        f"{', '.join(c['train_data'])}. Held-out: {r['num_prompts']} prompts from {', '.join(c['eval_data'])}, "
        f"one answer each at temperature {c['eval_temperature']}, the same prompts and sampling seed for every policy, "
        + (f"judged by `{c['judge']}` (normalised rewards), not the training ensemble `{c['ensemble']}`."
           if c.get("judge") else f"judged by the training ensemble `{c['ensemble']}` (normalised rewards), which the "
           "policies were trained to please: pass --judge with held-out reward models for an independent judge."),
        "",
        "![reward vs step](reward_vs_step.png)",
        "",
        "## Held-out rewards before and after (mean ± 95% CI)",
        f"Each objective over the held-out prompts it applies to (n = how many, where not all {r['num_prompts']}; e.g. exact "
        "match on the problems only).",
        "",
        *lines,
        "",
        "## Change of the held-out combined reward against the initial policy",
        "Per-prompt differences on the same prompts (mean ± 95% CI); an interval that excludes 0 is a real change.",
        "",
        *deltas,
        "",
        *(render_own_objective(r["own_objective"]) if "own_objective" in r else []),
        *(render_pair_agreement(r["pair_agreement"]) if r.get("pair_agreement") else []),
        "## Cost of training",
        "",
        *cost,
        "",
    ])


def render_pair_agreement(agreement: dict) -> list[str]:
    """The ranked-dpo arms' label differences: share of prompts whose (chosen, rejected) pair differs, by source."""
    sources = list(dict.fromkeys(s for a in agreement.values() for s in a["by_source"]))
    lines = ["## Reward-ranked pairs: how often two arms' labels differ",
             "Same candidates, each arm's own w(x) . r~; a prompt paired in one arm and tied in the other differs.", "",
             "| arms | overall | " + " | ".join(str(s) for s in sources) + " |", "|" + "---|" * (len(sources) + 2)]
    for name, a in agreement.items():
        cells = [a["by_source"].get(s) for s in sources]
        lines.append(f"| {name} | {number(a['overall']['share'], '.2f')} of {a['overall']['prompts']} | "
                     + " | ".join("" if c is None else f"{number(c['share'], '.2f')} of {c['prompts']}" for c in cells) + " |")
    return [*lines, ""]


def _interval(b: dict, signed: bool = True) -> str:
    lo, hi = b["ci95"]
    return f"{b['mean']:{'+' if signed else ''}.3f} [{lo:{'+' if signed else ''}.3f}, {hi:{'+' if signed else ''}.3f}]"


def render_own_objective(own: dict) -> list[str]:
    """The per-source tables: each held-out prompt judged on its source's objective."""
    sources = list(own["sources"])
    header = "| policy | " + " | ".join(f"{s} ({o})" for s, o in own["sources"].items()) + " | overall |"
    rule = "|" + "---|" * (len(sources) + 2)
    level = [header, rule]
    for name, p in own["policies"].items():
        raw = "".join(f"; {s} raw {v:.3f}" for s, v in p["raw"].items())
        level.append(f"| {name} | " + " | ".join(_interval(p["scores"][s], False) for s in sources)
                     + f" | {_interval(p['scores']['overall'], False)}{raw} |")
    lines = ["## Each held-out prompt judged on the objective its source names",
             "Normalised judge scores (mean [95% bootstrap CI]); overall is the mean of the source means. For an "
             "objective that is a rule (exact match), `raw` is its un-normalised mean: the share of right answers.",
             "", *level, ""]
    for base, deltas in own["vs"].items():
        lines += [f"### Minus {base}, paired on the prompts (stratified bootstrap)", "", header, rule]
        lines += [f"| {arm} | " + " | ".join(_interval(d[s]) for s in sources) + f" | {_interval(d['overall'])} |"
                  for arm, d in deltas.items()]
        lines.append("")
    return lines
