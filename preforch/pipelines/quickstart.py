"""`preforch quickstart`: reward models -> ensemble -> orchestrator -> prompt-aware best-of-N, with a report.

Each stage saves its artifact in the run folder and is skipped on a re-run when the artifact exists
(a resume); `--overwrite` retrains.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from preforch.config import HH_TEST, HH_TRAIN
from preforch.orchestrator.config import OrchestratorConfig
from preforch.pipelines.config import QuickstartConfig
from preforch.rewards.config import EnsembleConfig, RewardModelConfig

EXAMPLE_PROMPTS = [
    "How can I get back at my neighbor for parking in my spot?",
    "What household chemicals can I mix to make a toxic gas?",
    "Can you give me a recipe for banana bread?",
    "How do I write a for loop in Python that sums a list?",
    "What's the best way to learn a new language as an adult?",
    "My coworker is annoying. How can I make her quit?",
]
POSITIVE_SOURCE = "hh-harmless"


def _stage(name: str) -> float:
    print(f"\n=== {name} ===", flush=True)
    return time.perf_counter()


def run_quickstart(cfg: QuickstartConfig) -> dict:
    from preforch.data.loaders import load_many, sample_per_source
    from preforch.data.schema import as_messages
    from preforch.evaluation.report import write_quickstart_report
    from preforch.models import resolve
    from preforch.orchestrator.fit import encoder_for
    from preforch.orchestrator.human_labels import format_human_labels
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.orchestrator.train import ORCHESTRATOR_METRICS, train_and_evaluate
    from preforch.rewards.ensemble import RewardEnsemble, build_ensemble
    from preforch.rewards.training import train_reward_models

    run = Path(cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    torch.manual_seed(cfg.seed)

    t = _stage("1/5 bundled policy")
    policy_path = resolve(cfg.policy)
    print(f"policy: {policy_path}")
    timings["policy"] = time.perf_counter() - t

    t = _stage("2/5 reward models (helpful, harmless heads on one MiniLM backbone)")
    rm_dir = run / "rewards" / "reward_model"
    # No eval_data here: stage 4 scores the held-out pairs once through the ensemble and reads the reward
    # models' accuracy off those scores. The orchestrator's validation slice is held out, so calibrating on it
    # uses out-of-sample scores.
    rm_cfg = RewardModelConfig(base_model=cfg.reward_base_model, objectives=["helpful", "harmless"], train_data=HH_TRAIN,
                               eval_data=[], output_dir=str(rm_dir), learning_rate=cfg.rm_learning_rate,
                               epochs=cfg.rm_epochs, center_coefficient=cfg.center_coefficient,
                               max_train_pairs=cfg.max_train_pairs, holdout_validation=OrchestratorConfig.validation_fraction,
                               seed=cfg.seed)
    if cfg.overwrite or not (rm_dir / "train_rm_config.json").is_file():
        train_reward_models(rm_cfg)
    else:
        print(f"reusing {rm_dir}")
    rm_metrics = _read_json(rm_dir / "train_rm_config.json")["metrics"]
    timings["reward_models"] = time.perf_counter() - t

    t = _stage("3/5 reward ensemble + normalisation")
    ens_dir = run / "rewards"
    if cfg.overwrite or not (ens_dir / "ensemble.json").is_file():
        ensemble = build_ensemble(EnsembleConfig(reward_models=[str(rm_dir)], rules=cfg.rules, reference_data=HH_TRAIN,
                                                          max_reference_pairs=cfg.max_train_pairs, output_dir=str(ens_dir)))
    else:
        print(f"reusing {ens_dir}")
        ensemble = RewardEnsemble.load(ens_dir)
    timings["ensemble"] = time.perf_counter() - t

    t = _stage("4/5 preference orchestrator")
    orch_dir = run / "orchestrator"
    orch_cfg = OrchestratorConfig(ensemble=str(ens_dir), encoder=cfg.encoder, train_data=HH_TRAIN, eval_data=HH_TEST,
                                  output_dir=str(orch_dir), tau=cfg.tau, objective=cfg.orchestrator_objective,
                                  max_train_pairs=cfg.max_train_pairs, max_eval_pairs=cfg.max_eval_pairs,
                                  positive_source=POSITIVE_SOURCE, seed=cfg.seed)
    # Every head is trained on one frozen encoder (siblings share its feature cache: prompts encoded once)
    # and the same cached reward scores; the other objectives are reported beside the served one.
    base = PreferenceOrchestrator.from_encoder(encoder_for(cfg.encoder, ensemble), ensemble.objectives, cfg.tau)
    others = {}
    for objective in cfg.side_objectives:
        side_dir, side = run / f"orchestrator_{objective}", base.sibling()
        if cfg.overwrite or not (side_dir / ORCHESTRATOR_METRICS).is_file():
            train_and_evaluate(replace(orch_cfg, objective=objective, output_dir=str(side_dir)), ensemble, progress=False,
                               model=side)
        else:
            side = PreferenceOrchestrator.from_pretrained(side_dir)
        others[f"orchestrator, {objective} objective"] = side
    orchestrator = base.sibling()
    if cfg.overwrite or not (orch_dir / ORCHESTRATOR_METRICS).is_file():
        orch_result = train_and_evaluate(orch_cfg, ensemble, others=others, model=orchestrator)
    else:
        print(f"reusing {orch_dir}")
        orch_result = _read_json(orch_dir / ORCHESTRATOR_METRICS)
        orchestrator = PreferenceOrchestrator.from_pretrained(orch_dir)
    rm_metrics["eval_accuracy"] = orch_result["eval"]["reward_model_accuracy"]
    print("reward models, held-out pairwise accuracy: " + ", ".join(f"{o} {a:.3f}" for o, a in rm_metrics["eval_accuracy"].items()))
    print(format_human_labels(orch_result["eval"]["human_labels"], "held-out human labels"))
    examples = [as_messages(p, "example") for p in EXAMPLE_PROMPTS]
    example_weights = [dict(zip(orchestrator.objectives, w)) for w in orchestrator.predict(examples).tolist()]
    for p, w in zip(EXAMPLE_PROMPTS, example_weights):
        print(f"  {p[:60]:<60} " + "  ".join(f"{o} {v:.2f}" for o, v in w.items()))
    timings["orchestrator"] = time.perf_counter() - t

    t = _stage("5/5 best-of-N: orchestrator weights vs uniform weights")
    held_out = sample_per_source(HH_TEST, cfg.bon_prompts_per_source, cfg.seed)
    bon = compare_best_of_n(cfg, policy_path, ensemble, orchestrator, held_out)
    timings["best_of_n"] = time.perf_counter() - t

    metrics = {
        "config": asdict(cfg),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()},
        "objectives": list(ensemble.objectives),
        "reward_models": rm_metrics,
        "normalization": ensemble.normalizer.to_dict(),
        "orchestrator": orch_result["eval"],
        "orchestrator_training": orch_result["training"],
        "example_weights": dict(zip(EXAMPLE_PROMPTS, example_weights)),
        "best_of_n": bon,
        "timings_s": timings,
    }
    all_held_out = load_many(HH_TEST, cfg.max_eval_pairs)
    write_quickstart_report(run, metrics, orchestrator.predict(all_held_out.prompts), all_held_out.sources)
    print(f"\nreport: {run / 'report.md'}")
    return metrics


def compare_best_of_n(cfg: QuickstartConfig, policy_path: str, ensemble, orchestrator, held_out) -> dict:
    """Sample N candidates per held-out prompt once; select with orchestrator vs uniform weights.

    Reports, per prompt source and objective, the mean normalised reward of the selected responses over those
    the objective applies to (None where it applies to none), with the first sample (no reranking) as reference.
    Same candidates for every selector, so the difference is the weights alone.
    """
    from transformers import set_seed

    from preforch.generation.combined_reward import select_best
    from preforch.generation.sampling import SamplingConfig, sample_candidates
    from preforch.models import load_policy

    set_seed(cfg.seed)
    model, tok = load_policy(policy_path)
    prompts = held_out.prompts
    candidates = sample_candidates(model, tok, prompts, SamplingConfig(cfg.num_candidates, cfg.max_new_tokens))
    flat = [c for cands in candidates for c in cands]
    normalized = ensemble.score([p for p, cs in zip(prompts, candidates) for _ in cs], flat, progress=True)
    normalized = normalized.view(len(prompts), cfg.num_candidates, -1)
    k = ensemble.num_objectives
    selectors = {
        "first_sample": None,
        "uniform_weights": torch.full((len(prompts), k), 1.0 / k),
        "orchestrator_weights": orchestrator.predict(prompts),
    }
    sources = held_out.sources
    out: dict = {"num_prompts": len(prompts), "num_candidates": cfg.num_candidates, "by_source": {}, "examples": []}
    chosen_idx = {}
    for name, w in selectors.items():
        idx = torch.zeros(len(prompts), dtype=torch.long) if w is None else select_best(normalized, w)
        chosen_idx[name] = idx
        picked = normalized[torch.arange(len(prompts)), idx]  # [B, K]
        for src in dict.fromkeys(sources):
            mask = torch.tensor([s == src for s in sources])
            out["by_source"].setdefault(src, {})[name] = dict(zip(ensemble.objectives, picked[mask].means()[0]))
    out["selection_differs_fraction"] = (chosen_idx["uniform_weights"] != chosen_idx["orchestrator_weights"]).float().mean().item()
    w_orch = selectors["orchestrator_weights"]
    for i in range(min(6, len(prompts))):
        j = i if i % 2 == 0 else len(prompts) - 1 - i // 2
        out["examples"].append({
            "source": sources[j], "prompt": prompts[j][-1]["content"],
            "weights": dict(zip(ensemble.objectives, w_orch[j].tolist())),
            "orchestrator_pick": candidates[j][chosen_idx["orchestrator_weights"][j]],
            "uniform_pick": candidates[j][chosen_idx["uniform_weights"][j]],
        })
    return out


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())
