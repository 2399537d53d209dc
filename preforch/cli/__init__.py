"""`preforch` command line: one sub-command per pipeline stage. Heavy libraries load only when a
command runs, so `preforch --help` is instant."""

from __future__ import annotations

import sys

from preforch.cli.parsing import parse_config
from preforch.errors import PreforchError
from preforch.tables import load_attr

# name -> ("module:Config", "module:run", one-line help), imported when the command runs (like serving/policies/kinds.py's
# KINDS): a new command is one row.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "quickstart": ("preforch.pipelines.config:QuickstartConfig", "preforch.cli.commands:quickstart",
        "end to end on the bundled defaults: reward models, orchestrator, best-of-N report"),
    "train-rm": ("preforch.rewards.config:RewardModelConfig", "preforch.cli.commands:train_rm",
        "train Bradley-Terry reward models (single- or multi-head)"),
    "build-ensemble": ("preforch.rewards.config:EnsembleConfig", "preforch.cli.commands:build_ensemble",
        "combine reward models and rules, fit normalisation on a reference set"),
    "build-benchmark": ("preforch.pipelines.config:BenchmarkConfig", "preforch.cli.commands:build_benchmark",
        "one recipe's reward stack: reward models + rules, an independent judge, the orchestrator, its weights by source"),
    "train-orchestrator": ("preforch.orchestrator.config:OrchestratorConfig", "preforch.cli.commands:train_orchestrator",
        "train the Preference Orchestrator on reward-derived targets (Eq. 6-8)"),
    "eval-orchestrator": ("preforch.orchestrator.config:EvalOrchestratorConfig", "preforch.cli.commands:eval_orchestrator",
        "held-out KL vs baselines and prompt-source AUROC"),
    "weights": ("preforch.orchestrator.config:WeightsConfig", "preforch.cli.commands:weights",
        "print the orchestrator's weight of each objective for prompts"),
    "train-policy": ("preforch.alignment.config:PolicyConfig", "preforch.cli.commands:train_policy",
        "Pro-MORLHF / MORLHF / single-reward through TRL: GRPO, RLOO, reward-ranked or online DPO (Eq. 9)"),
    "train-experts": ("preforch.alignment.config:ExpertsConfig", "preforch.cli.commands:train_experts",
        "one LoRA expert per objective on one base model (DPO or GRPO), for --method soups / mod"),
    "train-mahalo": ("preforch.alignment.config:MahaloConfig", "preforch.cli.commands:train_mahalo",
        "MAHALO: one output head per objective on a shared trunk, each trained with DPO"),
    "train-value-head": ("preforch.serving.config:ValueHeadConfig", "preforch.cli.commands:train_value_head",
        "the arithmetic objective's value head (a PRM for MAHALO's guided decoding) from hindsight labels"),
    "train-wic": ("preforch.alignment.config:WicConfig", "preforch.cli.commands:train_wic",
        "Pro-WiC / RiC: preference in the prompt; offline SFT, online sample-relabel-filter-SFT (Eq. 10-11)"),
    "rl-compare": ("preforch.pipelines.config:RLComparisonConfig", "preforch.cli.commands:rl_compare",
        "train RL methods from one start, judge every checkpoint held-out: reward-vs-step plot, before/after table"),
    "headline": ("preforch.pipelines.config:HeadlineConfig", "preforch.cli.commands:headline",
        "PRO's headline test: arms x training seeds, an independent judge, Pro minus best fixed with CIs and noise floor"),
    "robustness": ("preforch.pipelines.config:RobustnessConfig", "preforch.cli.commands:robustness",
        "one objective's reward corrupted at increasing levels: the orchestrator retrained, its accuracy and weights"),
    "wic-compare": ("preforch.pipelines.config:WicComparisonConfig", "preforch.cli.commands:wic_compare",
        "Pro-WiC vs RiC-online vs RiC-offline (+ Soups and MOD with --expert_data) at one budget: fronts, hypervolumes, steering, compute"),
    "plot-logs": ("preforch.evaluation.config:PlotLogsConfig", "preforch.cli.commands:plot_logs",
        "plot a logged training metric against the step for several train-policy runs"),
    "generate": ("preforch.serving.config:GenerateConfig", "preforch.cli.commands:generate",
        "answers under orchestrator or user weights (best-of-N by default, or any --method)"),
    "evaluate": ("preforch.evaluation.config:EvaluateConfig", "preforch.cli.commands:evaluate",
        "a policy under a preference grid: rewards with CIs, Pareto front, hypervolume, gap"),
    "compare": ("preforch.evaluation.config:CompareConfig", "preforch.cli.commands:compare",
        "evaluation runs side by side: table, fronts, hypervolumes"),
    "rejudge": ("preforch.evaluation.config:RejudgeConfig", "preforch.cli.commands:rejudge",
        "score a comparison's kept replies with another judge, without training or generating again"),
    "serve": ("preforch.serving.config:ServeConfig", "preforch.cli.commands:serve",
        "an OpenAI-compatible HTTP endpoint for any preference policy, weights by the orchestrator"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: preforch <command> [--config recipe.yaml] [--option value ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help}" for name, (_, _, help) in COMMANDS.items()]
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
    config, run, help = COMMANDS[name]
    try:
        cfg = parse_config(load_attr(config), rest, prog=f"preforch {name}", description=help)
        load_attr(run)(cfg)
    except PreforchError as e:
        print(f"preforch {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outputs are written atomically, so what was there is as it was
        print(f"preforch {name}: interrupted", file=sys.stderr)
        return 130
    return 0


