"""`preforch` command line: one sub-command per pipeline stage. Heavy libraries load only when a
command runs, so `preforch --help` is instant."""

from __future__ import annotations

import sys
from typing import Callable

from preforch.cli.parsing import parse_config
from preforch.errors import PreforchError

# name -> (config class name in preforch.config, one-line help); runs preforch.cli.commands.<name>
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("QuickstartConfig", "end to end on the bundled defaults: reward models, orchestrator, best-of-N report"),
    "train-rm": ("RewardModelConfig", "train Bradley-Terry reward models (single- or multi-head)"),
    "build-ensemble": ("EnsembleConfig", "combine reward models and rules, fit normalisation on a reference set"),
    "build-benchmark": ("BenchmarkConfig", "one recipe's reward stack: reward models + rules, an independent judge, the orchestrator, its weights by source"),
    "train-orchestrator": ("OrchestratorConfig", "train the Preference Orchestrator on reward-derived targets (Eq. 6-8)"),
    "eval-orchestrator": ("EvalOrchestratorConfig", "held-out KL vs baselines and prompt-source AUROC"),
    "weights": ("WeightsConfig", "print the orchestrator's weight of each objective for prompts"),
    "train-policy": ("PolicyConfig", "Pro-MORLHF / MORLHF / single-reward RL with TRL GRPO or RLOO (Eq. 9)"),
    "train-experts": ("ExpertsConfig", "one LoRA expert per objective on one base model (DPO or GRPO), for --method soups / mod"),
    "train-mahalo": ("MahaloConfig", "MAHALO: one output head per objective on a shared trunk, each trained with DPO (issue 13)"),
    "train-value-head": ("ValueHeadConfig", "the arithmetic objective's value head (a PRM for MAHALO's guided decoding) from hindsight labels"),
    "train-wic": ("WicConfig", "Pro-WiC / RiC: preference in the prompt; offline SFT, online sample-relabel-filter-SFT (Eq. 10-11)"),
    "rl-compare": ("RLComparisonConfig", "train RL methods from one start, judge every checkpoint held-out: reward-vs-step plot, before/after table"),
    "wic-compare": ("WicComparisonConfig", "Pro-WiC vs RiC-online vs RiC-offline (+ Soups and MOD with --expert_data) at one budget: fronts, hypervolumes, steering, compute"),
    "plot-logs": ("PlotLogsConfig", "plot a logged training metric against the step for several train-policy runs"),
    "generate": ("GenerateConfig", "answers under orchestrator or user weights (best-of-N by default, or any --method)"),
    "evaluate": ("EvaluateConfig", "a policy under a preference grid: rewards with CIs, Pareto front, hypervolume, gap"),
    "compare": ("CompareConfig", "evaluation runs side by side: table, fronts, hypervolumes"),
    "serve": ("ServeConfig", "an OpenAI-compatible HTTP endpoint for any preference policy, weights by the orchestrator"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: preforch <command> [--config recipe.yaml] [--option value ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help}" for name, (_, help) in COMMANDS.items()]
    lines += ["", "Run `preforch <command> --help` for its options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"preforch: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    from preforch import config as config_module

    cls = getattr(config_module, COMMANDS[name][0])
    try:
        cfg = parse_config(cls, rest, prog=f"preforch {name}", description=COMMANDS[name][1])
        from preforch.cli import commands

        run: Callable = getattr(commands, name.replace("-", "_"))
        run(cfg)
    except PreforchError as e:
        print(f"preforch {name}: error: {e}", file=sys.stderr)
        return 2
    return 0
