"""The `moslim.json` spec of a policy trained by `preforch train-policy --method moslim` (objectives and level
counts), and the reader that takes the same spec from it or from the MOSLIM classifier's own config."""

from __future__ import annotations

import json
from pathlib import Path

SPEC_FILE = "moslim.json"


def read_spec(folder: str | Path) -> dict:
    """{objectives, num_levels} of a classifier folder (its config) or a train-policy moslim folder (moslim.json)."""
    # Imported here, not at the top: it pulls in transformers, which a served moslim policy loads only when it
    # reads its spec (the folder kinds are asked for their marker file without loading anything).
    from preforch.rewards.classifier import ClassifierRewardModel

    folder = Path(folder)
    file = folder / SPEC_FILE
    data = json.loads(file.read_text()) if file.is_file() else ClassifierRewardModel.read_config(folder)
    return {"objectives": list(data["objectives"]), "num_levels": list(data["num_levels"])}
