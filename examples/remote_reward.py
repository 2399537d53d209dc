"""`preforch serve`'s /v1/score as the remote reward model of an RL framework: copy this file next to your trainer.

- verl: a custom reward function (`custom_reward_function.path=remote_reward.py`,
  `custom_reward_function.name=compute_score`): `compute_score(data_source, solution_str, ground_truth, extra_info)`.
- OpenRLHF: needs no file: `--remote_rm_url http://HOST:PORT/get_reward` speaks its remote reward protocol
  (start the server with `preforch serve --reward_only --tokenizer <the policy>`). `--remote_rm_url
  remote_reward.py` also works, loading `reward_func(queries, prompts, labels)` below.
Both call the server once per batch (OpenRLHF) or sample (verl) and return the combined reward w . r~ (PRO's Eq. 9):
the server's default preference (`serve --weights`), else the orchestrator's per prompt, unless PREFORCH_PREFERENCE
(e.g. `helpful=0.7,harmless=0.3`) names one. Settings come from the environment: PREFORCH_SCORE_URL (default
http://127.0.0.1:8000/v1/score) and PREFORCH_API_KEY. Standard library only.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Sequence, Union

Prompt = Union[str, Sequence[dict]]  # a user message, or chat messages


def score_batch(prompts: Sequence[Prompt], replies: Sequence[str], preference: dict | None = None,
                url: str | None = None, api_key: str | None = None, timeout: float = 600) -> list[dict]:
    """POST the (prompt, reply) pairs to /v1/score; one dict per pair: scores, raw_scores, weights, reward."""
    url = url or os.environ.get("PREFORCH_SCORE_URL", "http://127.0.0.1:8000/v1/score")
    api_key = api_key or os.environ.get("PREFORCH_API_KEY")
    if preference is None and os.environ.get("PREFORCH_PREFERENCE"):
        preference = {k: float(v) for k, v in (item.split("=") for item in os.environ["PREFORCH_PREFERENCE"].split(","))}
    items = [{"messages": [{"role": "user", "content": p}] if isinstance(p, str) else list(p), "reply": r}
             for p, r in zip(prompts, replies)]
    body = json.dumps({"items": items, **({"preference": preference} if preference else {})}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=timeout) as response:
        return json.loads(response.read())["data"]


def compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float:
    """verl's custom reward function: the combined reward of one response (its prompt from extra_info['prompt']
    when the dataset puts it there, as chat messages or text)."""
    prompt = (extra_info or {}).get("prompt") or ""
    return score_batch([prompt], [solution_str])[0]["reward"]


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels=None):
    """OpenRLHF's remote reward function: queries are prompt + response texts, so each response is its query
    after its prompt. Returns a float tensor [B]."""
    import torch

    replies = [q[len(p):] if q.startswith(p) else q for q, p in zip(queries, prompts)]
    return torch.tensor([d["reward"] for d in score_batch(list(prompts), replies)], dtype=torch.float32)
