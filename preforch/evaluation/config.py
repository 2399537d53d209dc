"""Configs of the evaluation stage: `evaluate`, `compare`, `rejudge`, `plot-logs`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from preforch.config import HH_TEST, check_non_negative, check_positive, list_option, option
from preforch.errors import ConfigError
from preforch.serving.config import METHOD_HELP, POLICY_HELP, check_kind_field


@dataclass
class EvaluateConfig:
    """`preforch evaluate`: a policy under a preference grid, scored by a (judge) reward ensemble."""

    from_run: Optional[str] = option(None, "a quickstart run folder: take policy, ensemble, orchestrator, prompts and sampling from it")
    policy: str = option("smollm2", POLICY_HELP)
    method: Optional[str] = option(None, METHOD_HELP)
    ensemble: str = option("runs/quickstart/rewards", "the method's own reward ensemble (reranking, oracle weights w*)")
    judge: Optional[str] = option(None, "reward ensemble that scores the picks (default: --ensemble); may be held-out models")
    orchestrator: Optional[str] = option(None, "also evaluate the orchestrator's per-prompt weights")
    weights: Optional[str] = option(None, "also evaluate this preference as a row labelled by it, e.g. helpful=0.7,harmless=0.3, "
                                    "or partial: harmless=0.5,auto (the orchestrator fills the rest per prompt)")
    eval_data: list[str] = list_option(HH_TEST, "held-out preference data (prompts; chosen replies give w* for the gap)")
    prompts_per_source: int = option(16, "random prompts drawn from each eval_data spec")
    exclude_data: list[str] = list_option([], "data specs whose prompts never enter the held-out sample (e.g. the training "
                                          "prompts of the policy judged); with it, each prompt is drawn once")
    grid_divisions: int = option(10, "simplex lattice resolution d (K=2, d=10: 11 preferences)")
    grid: list[str] = list_option([], "explicit preferences instead of the lattice, each 'w1,w2,...'")
    reference_point: Optional[list[float]] = option(None, "hypervolume reference point, one value per objective (required)")
    num_candidates: Optional[int] = option(None, "N in best-of-N (default: the policy folder's, else 4)")
    max_new_tokens: int = option(48, "tokens per sample")
    temperature: float = option(0.8, "sampling temperature; 0 decodes greedily (not for best-of-n)")
    top_p: float = option(0.95, "nucleus sampling")
    batch_size: int = option(8, "prompts per generation batch")
    tau: float = option(1.0, "temperature of the oracle weights w* (the orchestrator's own tau when given)")
    seed: int = option(0, "seed for prompt sampling, generation and random weights")
    output_dir: str = option("runs/eval", "evaluation.json, report.md, front.png")
    generation_cache: Optional[str] = option(None, "folder of cached generations (default: OUTPUT_DIR/generations)")
    trust_remote_code: bool = option(False, "allow custom model code from the hub")

    def __post_init__(self):
        check_positive(self, "prompts_per_source", "grid_divisions", "num_candidates", "max_new_tokens", "batch_size", "tau")
        check_kind_field("method", self.method)
        check_non_negative(self, "temperature")


@dataclass
class CompareConfig:
    """`preforch compare RUN_DIR...`: evaluation runs side by side."""

    runs: list[str] = list_option([], "evaluation output folders (each with evaluation.json)")
    output_dir: str = option("runs/compare", "report.md, comparison.json, front.png (not one of the runs)")

    def __post_init__(self):
        inside = [r for r in self.runs if Path(r).resolve() == Path(self.output_dir).resolve()]
        if inside:  # its report.md and plots would be overwritten
            raise ConfigError(f"output_dir: {self.output_dir} is the evaluation run {inside[0]}; write the comparison "
                              "elsewhere")


@dataclass
class RejudgeConfig:
    """`preforch rejudge`: evaluated replies (a replies.jsonl.gz a comparison kept) scored by another judge."""

    replies: str = option("replies.jsonl.gz", "JSON lines (gzip) of evaluated replies: prompt, source, arm, seed, reply")
    judge: str = option("runs/judge/rewards", "reward ensemble folder that judges them (any preforch ensemble)")
    output_dir: str = option("runs/rejudge", "replies.jsonl.gz with this judge's scores, and summary.json")


@dataclass
class PlotLogsConfig:
    """`preforch plot-logs RUN_DIR...`: a training metric against the step, one line per run."""

    runs: list[str] = list_option([], "train-policy output folders (each with log.jsonl)")
    metric: str = option("objectives/combined", "logged metric to plot, e.g. objectives/harmless/normalized, kl")
    smooth: int = option(5, "moving-average window in steps")
    output: str = option("reward_vs_step.png", "PNG to write")
