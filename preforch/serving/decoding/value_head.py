"""The verifiable objective's process reward model (MAHALO's math value model): V(x, prefix) = P(the reply ends
with a correct answer | problem x, reply prefix), a logistic probe on a frozen causal LM's last hidden state at the
prefix's last token.

Trained on hindsight labels: each step prefix of a sampled reply is labelled with whether that reply's answer was
right, a one-rollout Monte Carlo estimate of the prefix's value under the sampling policy (MAHALO trains its value
model on Monte Carlo / hindsight step labels). Guided decoding then scores an unfinished arithmetic prefix with
one forward pass instead of `rollouts` sampled continuations (`step_scorers.arithmetic_step_value`).

Folder: value_head.json (backbone, objective, training record) + value_head.safetensors (weight [H], bias [1]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from preforch.data.arithmetic import Problem, check
from preforch.data.schema import Message
from preforch.errors import ConfigError

CONFIG_FILE, WEIGHTS_FILE = "value_head.json", "value_head.safetensors"


def step_prefixes(reply: str, markers: Sequence[str]) -> list[str]:
    """The reply cut after every step boundary (any of `markers`), and the whole reply last: its step prefixes."""
    cuts = sorted({i + len(m) for m in markers for i in range(len(reply)) if reply.startswith(m, i)})
    return [reply[:c] for c in cuts if 0 < c < len(reply)] + [reply]


def hindsight_rows(problems: Sequence[Problem], samples: Sequence[Sequence[str]],
                   markers: Sequence[str]) -> list[tuple[tuple[Message, ...], str, float]]:
    """(prompt, prefix, label) for every step prefix of every sample [P][n], label 1.0 if that sample's final
    answer is right, else 0.0."""
    return [(problem.prompt, prefix, float(check(reply, problem.answer)))
            for problem, row in zip(problems, samples) for reply in row for prefix in step_prefixes(reply, markers)]


def fit_probe(features: torch.Tensor, labels: torch.Tensor, weight_decay: float, steps: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression on standardised features [N, H] with labels [N] in {0, 1} and an L2 penalty
    `weight_decay`, by L-BFGS -> (weight [H], bias [1]) on the raw features."""
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    x = (features - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, labels) + weight_decay * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    weight = (w / std).detach()
    return weight, (b - (mean * weight).sum()).detach()


WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def choose_weight_decay(features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                        grid: Sequence[float] = WEIGHT_DECAYS, folds: int = 4) -> tuple[float, dict[float, float]]:
    """The probe's L2 penalty with the lowest cross-validated log loss -> (penalty, {penalty: mean held-out log
    loss}). features [N, H], labels [N], groups [N] (the problem each row came from): folds split whole problems,
    since the step prefixes of one problem share its answer and would leak it across a row-wise split."""
    fold_of = {g: i % folds for i, g in enumerate(torch.unique(groups).tolist())}
    fold = torch.tensor([fold_of[g] for g in groups.tolist()])
    losses = {}
    for penalty in grid:
        held = []
        for f in range(folds):
            train, test = fold != f, fold == f
            if labels[train].min() == labels[train].max() or not test.any():
                continue  # this split has one class to learn from: no estimate
            weight, bias = fit_probe(features[train], labels[train], penalty)
            held.append(torch.nn.functional.binary_cross_entropy_with_logits(features[test] @ weight + bias, labels[test]))
        losses[penalty] = float(torch.stack(held).mean()) if held else float("inf")
    return min(losses, key=losses.get), losses


class ValueHead:
    """A trained value head: `score(prompt, prefixes)` -> P(correct) [N]; the backbone loads on first use."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, backbone: str, record: dict | None = None,
                 trust_remote_code: bool = False):
        self.weight, self.bias, self.backbone, self.record = weight, bias, backbone, record or {}
        self.trust_remote_code, self._lm = trust_remote_code, None

    def lm(self):
        if self._lm is None:
            from preforch.models import load_policy

            self._lm = load_policy(self.backbone, dtype=torch.float32, trust_remote_code=self.trust_remote_code)
            self._lm[0].eval()
        return self._lm

    @torch.no_grad()
    def features(self, prompts: Sequence[Sequence[Message]], prefixes: Sequence[str], batch_size: int = 16,
                 progress: bool = False) -> torch.Tensor:
        """Last-layer hidden state [N, H] at the last token of each chat-templated prompt + reply prefix."""
        from tqdm.auto import tqdm

        lm, tok = self.lm()
        out = []
        for s in tqdm(range(0, len(prefixes), batch_size), desc="value-head features", unit="batch", disable=not progress):
            texts = [tok.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True) + r
                     for p, r in zip(prompts[s:s + batch_size], prefixes[s:s + batch_size])]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(lm.device)
            hidden = lm(**enc, output_hidden_states=True).hidden_states[-1].float()  # [B, T, H]
            last = (enc["attention_mask"] * torch.arange(enc["attention_mask"].shape[1], device=lm.device)).argmax(1)
            out.append(hidden[torch.arange(len(texts)), last].cpu())
        return torch.cat(out)

    def score(self, prompt: Sequence[Message], prefixes: Sequence[str]) -> torch.Tensor:
        """V(x, prefix) [N] in (0, 1) for one prompt's candidate prefixes."""
        return torch.sigmoid(self.features([prompt] * len(prefixes), prefixes) @ self.weight + self.bias)

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        from preforch.io import atomic_write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(folder / WEIGHTS_FILE))
        atomic_write_json(folder / CONFIG_FILE, {"backbone": self.backbone, **self.record})

    @classmethod
    def load(cls, folder: str | Path, trust_remote_code: bool = False) -> ValueHead:
        from preforch.io import load_safetensors, read_json

        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise ConfigError(f"{folder}: no {CONFIG_FILE}; preforch train-value-head makes a value head folder")
        record = read_json(folder / CONFIG_FILE)
        tensors = load_safetensors(folder / WEIGHTS_FILE)
        backbone = record.pop("backbone")
        if not Path(backbone).is_absolute() and (folder / backbone).exists():  # stored relative to the folder
            backbone = str(folder / backbone)
        return cls(tensors["weight"], tensors["bias"], backbone, record, trust_remote_code)
