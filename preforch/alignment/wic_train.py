"""`preforch train-wic`: one stage of Pro-WiC / RiC (`wic_offline.py`, `wic_online.py`), on top of the pieces
both stages share in `wic.py` (so neither stage module imports the module that runs it)."""

from __future__ import annotations

from preforch.alignment.config import WicConfig
from preforch.alignment.wic import Scorer
from preforch.alignment.wic_offline import run_offline
from preforch.alignment.wic_online import run_online
from preforch.rewards.ensemble import RewardEnsemble


def train_wic(cfg: WicConfig, scorer: Scorer | None = None) -> dict:
    """Run `cfg.stage` of `cfg.method`; `scorer` (default: the ensemble's normalised scores) is for tests."""
    ensemble = RewardEnsemble.load(cfg.ensemble)
    scorer = scorer or (lambda prompts, replies: ensemble.score(prompts, replies, progress=True))
    return (run_offline if cfg.stage == "offline" else run_online)(cfg, ensemble.objectives, scorer)
