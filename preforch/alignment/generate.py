"""`preforch generate`: best-of-N answers with weights from the orchestrator (per prompt), the user, or both
(`--weights harmless=0.5,auto`: the orchestrator fills the objectives not named).

A weights-in-context policy (train-wic) also reads the weights from its prompt; `--num_candidates 1` then
gives its answer alone, more candidates add reranking on top."""

from __future__ import annotations

from pathlib import Path

import torch

from preforch.alignment.best_of_n import SamplingConfig, best_of_n, sample_candidates
from preforch.config import GenerateConfig
from preforch.data.schema import as_messages
from preforch.data.weights import format_weights
from preforch.errors import ConfigError, DataError
from preforch.io import atomic_write_text
from preforch.orchestrator.preference import preference_weights
from preforch.rewards.ensemble import RewardEnsemble, check_objectives


def read_prompts(cfg: GenerateConfig) -> list[tuple[dict, ...]]:
    """Prompts from --prompt and/or --prompts_file (.txt: one per line; otherwise a preference file)."""
    prompts = [as_messages(p, f"--prompt {i}") for i, p in enumerate(cfg.prompt)]
    if cfg.prompts_file:
        path = Path(cfg.prompts_file)
        if path.suffix == ".txt":
            if not path.is_file():
                raise DataError(f"{path}: no such file")
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    prompts.append(as_messages(line, f"{path}:{n}"))
        else:
            from preforch.data.loaders import load_preferences

            prompts += load_preferences(str(path)).prompts
    if not prompts:
        raise ConfigError("no prompts: give --prompt \"...\" or --prompts_file")
    return prompts


def conditioned_prompts(policy: str, prompts, weights: torch.Tensor, objectives) -> list:
    """The prompts the policy sees: unchanged, or, for a weights-in-context policy (a folder with wic.json),
    each with its weights [B, K] (Pro-WiC) or RiC's target scores for them written in (Eq. 10-11)."""
    from preforch.alignment.wic import SPEC_FILE, load_wic_spec
    from preforch.models import resolve

    path = Path(resolve(policy))
    if not (path / SPEC_FILE).is_file():
        return list(prompts)
    spec = load_wic_spec(path)
    check_objectives(objectives, spec.objectives, f"weights-in-context policy {policy}")
    return spec.condition(prompts, weights)


def run_generate(cfg: GenerateConfig) -> list[dict]:
    from transformers import set_seed

    from preforch.models import load_policy

    prompts = read_prompts(cfg)
    ensemble = RewardEnsemble.load(cfg.ensemble)
    weights = preference_weights(cfg.weights, prompts, ensemble.objectives, cfg.orchestrator)
    asked = conditioned_prompts(cfg.policy, prompts, weights, ensemble.objectives)
    set_seed(cfg.seed)
    model, tok = load_policy(cfg.policy, trust_remote_code=cfg.trust_remote_code)
    sampling = SamplingConfig(cfg.num_candidates, cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.batch_size)
    candidates = sample_candidates(model, tok, asked, sampling)
    flat_prompts = [p for p, cands in zip(prompts, candidates) for _ in cands]
    normalized = ensemble.score(flat_prompts, [c for cands in candidates for c in cands]).view(len(prompts), cfg.num_candidates, -1)
    results = best_of_n(candidates, normalized, weights)
    for r, p in zip(results, asked):
        r["prompt"] = p[-1]["content"]
        r["weights"] = format_weights(r["weights"], ensemble.objectives)
        r["rewards"] = dict(zip(ensemble.objectives, r["rewards"]))
    if cfg.output:
        import json

        atomic_write_text(cfg.output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
    return results
