"""`preforch generate`: a preference policy answers under weights from the orchestrator (per prompt), the user, or
both (`--weights harmless=0.5,auto`: the orchestrator fills the objectives not named).

The policy is anything `preforch.serving` loads: by default a bare model is served best-of-N, reranked with
`--ensemble`; a train-wic folder reads the weights from its prompt (`--method best-of-n` reranks its answers)."""

from __future__ import annotations

from pathlib import Path

from preforch.data.schema import as_messages
from preforch.data.weights import format_weights
from preforch.errors import ConfigError, DataError
from preforch.generation.combined_reward import combined_reward
from preforch.io import atomic_write_text, read_text
from preforch.orchestrator.preference import preference_weights
from preforch.rewards.ensemble import RewardEnsemble
from preforch.serving.config import GenerateConfig
from preforch.serving.policies.folder import served_policy


def read_prompts(cfg: GenerateConfig) -> list[tuple[dict, ...]]:
    """Prompts from --prompt and/or --prompts_file (.txt: one per line; otherwise a preference file)."""
    prompts = [as_messages(p, f"--prompt {i}") for i, p in enumerate(cfg.prompt)]
    if cfg.prompts_file:
        path = Path(cfg.prompts_file)
        if path.suffix == ".txt":
            if not path.is_file():
                raise DataError(f"{path}: no such file")
            for n, line in enumerate(read_text(path).splitlines(), 1):
                if line.strip():
                    prompts.append(as_messages(line, f"{path}:{n}"))
        else:
            from preforch.data.loaders import load_preferences

            prompts += load_preferences(str(path)).prompts
    if not prompts:
        raise ConfigError("no prompts: give --prompt \"...\" or --prompts_file")
    for i, prompt in enumerate(prompts):
        chars = sum(len(m["content"]) for m in prompt)
        if chars > cfg.max_prompt_chars:
            raise ConfigError(f"prompt {i}: {chars} characters, over --max_prompt_chars {cfg.max_prompt_chars}")
    return prompts


def run_generate(cfg: GenerateConfig) -> list[dict]:
    """One answer per prompt from the preference policy `cfg.policy` under its weights; each row also gives the
    prompt as the policy read it, the answer's normalised rewards (None where an objective does not apply) and its
    combined reward under those weights (over the objectives that apply)."""
    prompts = read_prompts(cfg)
    ensemble = RewardEnsemble.load(cfg.ensemble)
    policy, sampling = served_policy(cfg, ensemble)
    weights = preference_weights(cfg.weights, prompts, ensemble.objectives, cfg.orchestrator)
    replies = [r[0] for r in policy.respond(prompts, weights, sampling)]
    rewards = ensemble.score(prompts, replies)  # [P, K]; best-of-n's picks come from the ensemble's cache
    combined = combined_reward(rewards, weights).tolist()  # [P]
    results = [{"prompt": asked[-1]["content"], "response": reply, "weights": format_weights(w, ensemble.objectives),
                "rewards": dict(zip(ensemble.objectives, r)), "combined_reward": c}
               for asked, reply, w, r, c in zip(policy.conditioned(prompts, weights), replies, weights, rewards.tolist(),
                                                combined)]
    if cfg.output:
        import json

        atomic_write_text(cfg.output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
    return results
