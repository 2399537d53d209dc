"""PRO's prompt-aware reward as a verl custom reward function, in-process (no server): the orchestrator weighs each
prompt, the ensemble scores each response, and the score is the combined reward w(x) . r~(x, y) (PRO's Eq. 9) over
the objectives that apply.

    custom_reward_function.path=examples/verl_reward.py
    custom_reward_function.name=compute_score          # reward_model.reward_manager=naive (one response per call)
    custom_reward_function.name=compute_score_batch    # reward_model.reward_manager=batch (faster)

verl passes no prompt to a reward function, so put it in each row's `extra_info` as "prompt" (chat messages or a
user message's text) when you build the dataset. The reward models load once per worker, from PREFORCH_ENSEMBLE and
PREFORCH_ORCHESTRATOR (defaults: the quickstart's); PREFORCH_PREFERENCE (e.g. helpful=0.7,harmless=0.3) replaces
the orchestrator's weights. Besides "score", each result carries `score/<o>`, `applies/<o>` and `weight/<o>` for
verl's reward_extra_info logs.
"""

import os
from functools import lru_cache

from preforch.serving.server.api_schema import extra_logs


@lru_cache(maxsize=None)
def _served():
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.serving.server.served import Served

    ensemble = RewardEnsemble.load(os.environ.get("PREFORCH_ENSEMBLE", "runs/quickstart/rewards"))
    orchestrator = PreferenceOrchestrator.from_pretrained(os.environ.get("PREFORCH_ORCHESTRATOR",
                                                                         "runs/quickstart/orchestrator"))
    return Served(None, ensemble, orchestrator, default_preference=os.environ.get("PREFORCH_PREFERENCE"))


def _messages(extra_info) -> tuple:
    prompt = (extra_info or {}).get("prompt")
    if not prompt:
        raise ValueError("extra_info['prompt'] is missing: put each row's prompt there when building the dataset")
    return ({"role": "user", "content": prompt},) if isinstance(prompt, str) else tuple(dict(m) for m in prompt)


def compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, **kwargs) -> list[dict]:
    """verl's batch reward function: one dict per response, "score" the combined reward."""
    served = _served()
    replies = list(solution_strs)
    data = served.score([_messages(e) for e in extra_infos], replies, [served.default_preference] * len(replies))
    logs = extra_logs(data, served.objectives)
    return [{"score": d["reward"], **{key: values[i] for key, values in logs.items()}} for i, d in enumerate(data)]


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """verl's per-response reward function."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info])[0]
