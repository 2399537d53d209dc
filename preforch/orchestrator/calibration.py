"""A calibrated temperature for the orchestrator's weights.

Eq. 8 fits f_phi to the targets of Eq. 7; KL to noisy per-prompt targets shrinks the predictions toward
their mean, so the weights rank prompts well but come out too flat to change which reply wins. One
scalar T, `w = softmax(logits / T)`, restores their decisiveness without touching the ranking. T is
chosen on validation pairs by the Bradley-Terry likelihood of the human labels under the combined
reward, stored in the orchestrator's config and applied by `predict` everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from preforch.orchestrator.human_labels import combined_margins
from preforch.rewards.scores import Scores

TEMPERATURE_GRID = (0.05, 0.07, 0.1, 0.14, 0.2, 0.28, 0.4, 0.57, 0.8, 1.0, 1.4, 2.0)


def tempered_weights(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / T): [N, K] -> [N, K] on the simplex; T < 1 sharpens, T > 1 flattens."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(logits.float() / temperature, dim=-1)


def label_nll(weights: torch.Tensor, delta: Scores | torch.Tensor) -> float:
    """Mean -log sigmoid(w . (r~_w - r~_l)): how well the combined reward predicts the human labels.
    weights [N, K] or [K], delta [N, K] (over the objectives that apply, `combined_margins`)."""
    return float(-F.logsigmoid(combined_margins(weights, delta)).mean())


def fit_temperature(logits: torch.Tensor, delta: Scores | torch.Tensor,
                    grid: tuple[float, ...] = TEMPERATURE_GRID) -> tuple[float, dict]:
    """The T in `grid` minimising `label_nll` on validation pairs (logits [N, K], delta [N, K]).
    Returns (T, {T: nll}) so the choice can be reported."""
    if not len(delta):
        raise ValueError("no validation pairs to calibrate the temperature on")
    nll = {t: label_nll(tempered_weights(logits, t), delta) for t in grid}
    return min(nll, key=nll.get), nll
