"""What each CLI command does: parse nothing, compute nothing; call the library and print."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from preforch.config import (EnsembleConfig, EvalOrchestratorConfig, GenerateConfig, OrchestratorConfig,
                             RewardModelConfig, WeightsConfig)
from preforch.data.loaders import load_many
from preforch.errors import ConfigError
from preforch.io import atomic_write_json
from preforch.models import is_main_process

ORCHESTRATOR_METRICS = "train_metrics.json"


def train_rm(cfg: RewardModelConfig) -> None:
    from preforch.rewards.training import train_reward_models

    _, metrics = train_reward_models(cfg)
    if not is_main_process():  # under torchrun, one process reports
        return
    for out, m in metrics.items():
        accs = ", ".join(f"{o} {a:.3f}" for o, a in m["eval_accuracy"].items())
        print(f"saved {out}  held-out pairwise accuracy: {accs or 'n/a (no eval_data)'}")


def build_ensemble(cfg: EnsembleConfig):
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import HFRewardModel, RuleReward

    sources = [HFRewardModel(p, trust_remote_code=cfg.trust_remote_code) for p in cfg.reward_models]
    ensemble = RewardEnsemble(sources + [RuleReward.from_spec(r) for r in cfg.rules])
    reference = load_many(cfg.reference_data, cfg.max_reference_pairs)
    stats = ensemble.fit_normalization(reference)
    ensemble.save(cfg.output_dir)
    print(f"saved {Path(cfg.output_dir) / 'ensemble.json'}: objectives {list(ensemble.objectives)}, "
          f"z-scores fitted on {stats.num_samples} responses")
    return ensemble


def train_orchestrator(cfg: OrchestratorConfig) -> dict:
    import torch

    from preforch.orchestrator.evaluate import evaluate_orchestrator
    from preforch.orchestrator.fit import train_orchestrator as fit
    from preforch.rewards.ensemble import RewardEnsemble

    ensemble = RewardEnsemble.load(cfg.ensemble)
    model, info = fit(cfg, ensemble, load_many(cfg.train_data, cfg.max_train_pairs))
    if not is_main_process():  # under torchrun, one process saves and evaluates
        return {}
    model.metadata["mean_train_target"] = info["mean_target"]
    model.save_pretrained(cfg.output_dir)
    result = {"config": asdict(cfg), "training": info}
    if cfg.eval_data:
        result["eval"] = evaluate_orchestrator(model, ensemble, load_many(cfg.eval_data, cfg.max_eval_pairs),
                                               torch.tensor(info["mean_target"]), cfg.positive_source)
        _print_eval(result["eval"])
    atomic_write_json(Path(cfg.output_dir) / ORCHESTRATOR_METRICS, result)  # last: marks a finished run
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
                                   torch.tensor(mean), cfg.positive_source)
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
    from preforch.alignment.generate import run_generate

    results = run_generate(cfg)
    for r in results:
        print(f"\n>>> {r['prompt']}\nweights: {r['weights']}\n{r['response']}")
    return results


def quickstart(cfg) -> dict:
    from preforch.pipelines.quickstart import run_quickstart

    return run_quickstart(cfg)


def _print_eval(ev: dict) -> None:
    kl = ev["kl"]
    print(f"held-out KL(w*||.) over {ev['num_prompts']} prompts: orchestrator {kl['orchestrator']:.4f} | "
          f"uniform {kl['uniform']:.4f} | constant mean target {kl['constant_mean_target']:.4f}")
    if "auroc" in ev:
        a = ev["auroc"]
        print(f"AUROC of each weight for source {a['positive_source']!r}: "
              + ", ".join(f"{o} {v:.3f}" for o, v in a["per_objective"].items()))
