"""What each CLI command does: parse nothing, compute nothing; call the library and print."""

from __future__ import annotations

import json
from pathlib import Path

from preforch.alignment.config import ExpertsConfig, MahaloConfig, PolicyConfig, WicConfig
from preforch.data.loaders import load_many
from preforch.errors import ConfigError
from preforch.evaluation.config import CompareConfig, EvaluateConfig, PlotLogsConfig, RejudgeConfig
from preforch.io import atomic_write_json, read_jsonl
from preforch.models import is_main_process
from preforch.orchestrator.config import EvalOrchestratorConfig, OrchestratorConfig, WeightsConfig
from preforch.pipelines.config import HeadlineConfig, RLComparisonConfig, RobustnessConfig, WicComparisonConfig
from preforch.rewards.config import EnsembleConfig, RewardModelConfig
from preforch.serving.config import GenerateConfig, ServeConfig, ValueHeadConfig


def train_rm(cfg: RewardModelConfig) -> None:
    from preforch.rewards.training import train_reward_models

    _, metrics = train_reward_models(cfg)
    if not is_main_process():  # under torchrun, one process reports
        return
    for out, m in metrics.items():
        accs = ", ".join(f"{o} {a:.3f}" for o, a in m["eval_accuracy"].items())
        print(f"saved {out}  held-out pairwise accuracy: {accs or 'n/a (no eval_data)'}")
        for o, h in m.get("heads", {}).items():  # MOSLIM classification heads (--levels)
            print(f"  {o}: exact level {h['exact_accuracy']:.3f}, within one {h['within_one_accuracy']:.3f}, "
                  f"ECE {h['ece']:.3f} ({h['pairs']} pairs)")


def build_ensemble(cfg: EnsembleConfig):
    from preforch.rewards.ensemble import build_ensemble as build

    ensemble = build(cfg)
    stats = ensemble.normalizer
    print(f"saved {Path(cfg.output_dir) / 'ensemble.json'}: objectives {list(ensemble.objectives)}, "
          f"z-scores fitted on {stats.num_samples} responses")
    for objective, n, mean in zip(ensemble.objectives, stats.counts, stats.mean.tolist()):
        if n != stats.num_samples:  # an objective fitted on the replies it applies to, or on a reference of its own
            print(f"  {objective}: mean {mean:.3f} over the {n} responses it applies to")
    return ensemble


def train_orchestrator(cfg: OrchestratorConfig) -> dict:
    from preforch.orchestrator.train import train_and_evaluate

    result = train_and_evaluate(cfg)
    if not result:  # a non-main process under torchrun
        return result
    val = result["training"].get("validation")
    if val:
        if "temperature" in val:
            print(f"calibrated temperature {val['temperature']:g} (Bradley-Terry likelihood on {val['pairs']} validation pairs)")
        print_human_labels(val["human_labels"], "validation")
    if "eval" in result:
        _print_eval(result["eval"])
    print(f"saved {cfg.output_dir}")
    return result


def eval_orchestrator(cfg: EvalOrchestratorConfig) -> dict:
    import torch

    from preforch.orchestrator.evaluate import evaluate_orchestrator
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble

    model = PreferenceOrchestrator.from_pretrained(cfg.orchestrator)
    mean = model.metadata.get("mean_train_target")
    if mean is None:
        raise ConfigError(f"{cfg.orchestrator}: no mean_train_target recorded; retrain with preforch train-orchestrator")
    result = evaluate_orchestrator(model, RewardEnsemble.load(cfg.ensemble), load_many(cfg.eval_data, cfg.max_eval_pairs),
                                   torch.tensor(mean), cfg.positive_source, cfg.dump_weights)
    _print_eval(result)
    if cfg.output:
        atomic_write_json(cfg.output, result)
    return result


def weights(cfg: WeightsConfig) -> list[dict]:
    from preforch.data.schema import as_messages
    from preforch.orchestrator.model import PreferenceOrchestrator

    if not cfg.prompt:
        raise ConfigError("give at least one prompt: preforch weights \"How do I pick a lock?\"")
    model = PreferenceOrchestrator.from_pretrained(cfg.orchestrator)
    prompts = [as_messages(p, f"prompt {i}") for i, p in enumerate(cfg.prompt)]
    rows = [{"prompt": p, "weights": dict(zip(model.objectives, w))} for p, w in zip(cfg.prompt, model.predict(prompts).tolist())]
    if cfg.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(r["prompt"])
            for o, w in r["weights"].items():
                print(f"  {o:<12} {w:.3f}  {'#' * round(40 * w)}")
    return rows


def generate(cfg: GenerateConfig) -> list[dict]:
    from preforch.serving.generate import run_generate

    results = run_generate(cfg)
    for r in results:
        print(f"\n>>> {r['prompt']}\nweights: {r['weights']}\n{r['response']}")
    return results


def train_policy(cfg: PolicyConfig) -> dict:
    from preforch.alignment.morlhf import train_policy as run

    result = run(cfg)
    if is_main_process():
        print(f"{cfg.method} ({cfg.algorithm}): {result['steps']} steps; policy saved to {result['policy']}; "
              f"per-step log {result['log']}")
    return result


def _print_accuracy_table(table: dict, row_label: str, objectives, key: str = "accuracy") -> None:
    """{row: {objective: {key: ...}}} as aligned text, one column per objective's held-out pairs."""
    width = max(map(len, [*table, row_label]))
    print(f"  {row_label:<{width}}  " + "  ".join(f"{o:>10}" for o in objectives))
    for name, row in table.items():
        print(f"  {name:<{width}}  " + "  ".join(f"{row[o][key]:>10.3f}" if row[o][key] is not None else f"{'-':>10}"
                                                 for o in objectives))


def train_experts(cfg: ExpertsConfig) -> dict:
    from preforch.alignment.experts import train_experts as run

    result = run(cfg)
    if not result:  # a non-main process under torchrun
        return result
    print(f"held-out implicit-reward accuracy (beta {cfg.beta:g}; rows: experts, columns: each objective's pairs)")
    _print_accuracy_table(result["heldout_accuracy"], "expert", cfg.objectives)
    print(f"saved {result['experts']}; serve it with --method soups or --method mod")
    return result


def train_mahalo(cfg: MahaloConfig) -> dict:
    from preforch.alignment.mahalo import train_mahalo as run

    result = run(cfg)
    print(f"head x objective held-out implicit-reward accuracy (beta {cfg.beta:g}; columns: each objective's pairs)")
    _print_accuracy_table(result["heldout_accuracy"], "head", cfg.objectives)
    print("the same, length-balanced (the mean of the accuracies where the chosen reply is longer and where it is "
          "shorter; a head that learned only a length preference scores 0.5)")
    _print_accuracy_table(result["heldout_accuracy"], "head", cfg.objectives, key="length_balanced_accuracy")
    print(f"saved {result['policy']}; serve it with --method mahalo")
    return result


def train_value_head(cfg: ValueHeadConfig) -> dict:
    from preforch.serving.train_value_head import train_value_head as run

    result = run(cfg)
    held = result["heldout"]
    print(f"held-out prefixes: AUROC {held['auroc']:.3f}, Brier {held['brier']:.4f} (base rate alone "
          f"{held['brier_base_rate']:.4f}); saved {result['value_head']}; guide with value_head in a mahalo policy")
    return result


def rl_compare(cfg: RLComparisonConfig) -> dict:
    from preforch.evaluation.report import number
    from preforch.pipelines.rl_comparison import run_rl_comparison

    r = run_rl_comparison(cfg)
    if cfg.train_only:
        print("trained (--train_only): " + ", ".join(f"{arm} in {d}" for arm, d in r["trained"].items()))
        return r
    for method, d in r["methods"].items():
        print(f"{method}: held-out combined reward change after {d['final_step']} steps (paired, 95% CI): "
              + ", ".join(f"{w} weights {v['mean']:+.3f} ± {number(v['ci95'])}" for w, v in d["delta_combined"].items()))
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return r


def headline(cfg: HeadlineConfig) -> dict:
    from preforch.pipelines.headline import run_headline
    from preforch.pipelines.headline_report import ci

    r = run_headline(cfg)
    if cfg.train_only:
        print("trained (--train_only): " + ", ".join(f"{arm} in {d}" for arm, d in r["trained"].items()))
        return r
    for signal, s in r["signals"].items():
        print(f"{signal}: {s['pro']} minus {s['best_fixed']}, own objective, pooled over seeds {cfg.seeds}: "
              f"{ci(s['primary']['pooled']['overall'])}" + (" (clears the noise floor)" if s["primary"]["bold"] else ""))
    print(f"report: {Path(cfg.output_dir) / 'report.md'}; replies: {r['replies']}")
    return r


def robustness(cfg: RobustnessConfig) -> dict:
    from preforch.pipelines.robustness import ROWS, run_robustness

    r = run_robustness(cfg)
    for kind, keys in r["curves"].items():
        worst = r["levels"][keys[-1]]
        print(f"{kind} {worst['level']:g}: " + ", ".join(f"{n} {worst['accuracy'][n]['accuracy']:.3f}" for n in ROWS)
              + f"; orchestrator's weight on {r['objective']} {r['levels'][keys[0]]['weight']['orchestrator']:.3f} -> "
              f"{worst['weight']['orchestrator']:.3f}")
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return r


def wic_compare(cfg: WicComparisonConfig) -> dict:
    from preforch.evaluation.report import number
    from preforch.pipelines.wic_comparison import run_wic_comparison

    r = run_wic_comparison(cfg)
    for arm, d in r["arms"].items():
        print(f"{arm}: hypervolume {d['hypervolume']:.4f}; steering Spearman "
              + ", ".join(f"{o} {number(s['spearman'], '.2f')}" for o, s in d["steering"].items()))
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return r


def plot_logs(cfg: PlotLogsConfig) -> None:
    from preforch.alignment.trl_utils import LOG_FILE
    from preforch.evaluation.plots import plot_series

    if not cfg.runs:
        raise ConfigError("give one or more train-policy folders: preforch plot-logs runs/pro_morlhf runs/morlhf")
    series = {}
    for run in cfg.runs:
        log = Path(run) / LOG_FILE
        if not log.is_file():
            raise ConfigError(f"{run}: no {LOG_FILE} (not a train-policy output folder)")
        points = [(_field(r, "step", where), _field(r, cfg.metric, where)) for where, r in read_jsonl(log, ConfigError)
                  if isinstance(r, dict) and cfg.metric in r]
        if not points:
            raise ConfigError(f"{log}: metric {cfg.metric!r} never logged")
        series[Path(run).name] = points
    plot_series(series, Path(cfg.output), cfg.metric, cfg.smooth)
    print(f"wrote {cfg.output}")


def _field(row: dict, name: str, where: str) -> float:
    try:
        return float(row[name])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where}: field {name!r} is not a number ({row.get(name)!r})") from None


def evaluate(cfg: EvaluateConfig) -> dict:
    from preforch.evaluation.harness import run_evaluation

    r = run_evaluation(cfg)
    best = max(r["grid"], key=lambda row: sum(row["mean"][o] for o in r["front_objectives"]))
    print(f"{r['num_prompts']} prompts x {len(r['grid'])} preferences; hypervolume {r['hypervolume']:.4f} "
          f"(reference {r['reference_point']}); best-balanced preference {best['label']}")
    print("alignment gap: " + ", ".join(f"{k} {g['mean']:.3f}" for k, g in r["alignment_gap"].items()))
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return r


def compare(cfg: CompareConfig) -> dict:
    from preforch.evaluation.compare import compare_runs

    comparison = compare_runs(cfg.runs, cfg.output_dir)
    for name, s in comparison["runs"].items():
        print(f"{name}: hypervolume {s['hypervolume']:.4f}")
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return comparison


def build_benchmark(cfg) -> dict:
    from preforch.pipelines.benchmark import build_benchmark as build

    r = build(cfg)
    for source, w in r["weights_by_source"].items():
        print(f"  {source:<16} " + "  ".join(f"{o} {v:.2f}" for o, v in w["mean"].items()))
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return r


def quickstart(cfg) -> dict:
    from preforch.pipelines.quickstart import run_quickstart

    return run_quickstart(cfg)


def print_human_labels(table: dict, title: str) -> None:
    from preforch.orchestrator.human_labels import format_human_labels

    print(format_human_labels(table, title))


def _print_eval(ev: dict) -> None:
    print_human_labels(ev["human_labels"], f"held-out human labels (temperature {ev['temperature']:.2f})")
    kl = ev["kl"]
    print(f"held-out KL(w*||.) over {ev['num_prompts']} prompts: orchestrator {kl['orchestrator']:.4f} | "
          f"uniform {kl['uniform']:.4f} | constant mean target {kl['constant_mean_target']:.4f}")
    cal = ev["calibration"]
    print(f"top objective agrees with the target's on {cal['top1_agreement']:.3f} of prompts; ECE {cal['ece']:.3f}")
    if "auroc" in ev:
        a = ev["auroc"]
        print(f"AUROC of each weight for source {a['positive_source']!r}: "
              + ", ".join(f"{o} {v:.3f}" for o, v in a["per_objective"].items()))
    print("sharpness (entropy in nats by source; KL to the targets):")
    for name, s in ev["sharpness"].items():
        print(f"  {name}: " + ", ".join(f"{src} {e['mean']:.3f}" for src, e in s["entropy"].items())
              + f"; KL {s['kl_to_targets']:.4f}")


def train_wic(cfg: WicConfig) -> dict:
    from preforch.alignment.wic_train import train_wic as run

    result = run(cfg)
    if cfg.stage == "offline":
        print(f"{cfg.method} offline: {result['sft_steps']} SFT steps on {result['sft_samples']} samples "
              f"({result['sft_tokens']} tokens); policy saved to {result['policy']}")
    else:
        t = result["totals"]
        print(f"{cfg.method} online: {len(result['iterations'])} iteration(s), kept {t['kept']}/{t['generated']} samples "
              f"({t['kept_fraction']:.2f}), {t['sft_steps']} SFT steps; policy {result['policy']}")
    print(f"accounting: {Path(cfg.output_dir) / 'wic_run.json'}")
    return result


def serve(cfg: ServeConfig) -> None:
    from preforch.serving.server.serve import load_served, run_server

    served = load_served(cfg)
    what = "rewards only" if served.policy is None else f"{served.kind} policy {cfg.policy}"
    print(f"serving {what} (objectives {', '.join(served.objectives)}) on http://{cfg.host}:{cfg.port}/v1; "
          f"OpenRLHF's remote reward at http://{cfg.host}:{cfg.port}/get_reward", flush=True)
    run_server(served, cfg)


def rejudge(cfg: RejudgeConfig) -> dict:
    from preforch.evaluation.replies import run_rejudge

    summary = run_rejudge(cfg)
    print(f"{summary['num_replies']} replies judged by {cfg.judge}; mean per objective (n) by arm and source:")
    for arm, by_source in summary["by_arm"].items():
        for source, stats in by_source.items():
            cells = ", ".join(f"{o} {'n/a' if m is None else f'{m:+.3f}'} ({stats['n'][o]})" for o, m in stats["mean"].items())
            print(f"  {arm} / {source}: {cells}")
    print(f"written: {Path(cfg.output_dir) / 'replies.jsonl.gz'}, {Path(cfg.output_dir) / 'summary.json'}")
    return summary
