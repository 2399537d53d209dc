"""`preforch train-value-head`: the arithmetic objective's value head (decoding/value_head.py), fitted on
hindsight labels of a preference policy's own samples. It loads a policy to sample from, so it sits above
policies/, beside generate.py, not in decoding/ (which kinds import)."""

from __future__ import annotations

import math

import torch

from preforch.data.arithmetic import make_problems
from preforch.data.weights import parse_weights
from preforch.errors import DataError
from preforch.generation.sampling import SamplingConfig
from preforch.io import atomic_directory
from preforch.serving.decoding.guided_decoding import StepRule
from preforch.serving.decoding.value_head import ValueHead, choose_weight_decay, fit_probe, hindsight_rows
from preforch.serving.policies.folder import load_preference_policy
from preforch.serving.policies.policy import LoadOptions


def train_value_head(cfg) -> dict:
    """`preforch train-value-head` (cfg: `ValueHeadConfig`): sample the policy on seeded training and held-out
    problems, label every step prefix by hindsight, fit the probe, and report held-out AUROC and Brier score
    against the constant base rate; OUTPUT_DIR is written whole or not at all."""
    from sklearn.metrics import roc_auc_score

    policy = load_preference_policy(cfg.policy, cfg.method, options=LoadOptions(cfg.trust_remote_code))
    k = len(policy.objectives)
    w = parse_weights(cfg.weights, policy.objectives) if cfg.weights else torch.full((k,), 1 / k)
    sampling = SamplingConfig(cfg.samples, cfg.max_new_tokens, temperature=1.0, top_p=1.0, seed=cfg.seed)
    head = ValueHead(torch.zeros(0), torch.zeros(1), cfg.backbone, trust_remote_code=cfg.trust_remote_code)
    markers, data, groups = StepRule.named(cfg.boundary).markers, {}, {}
    for split, n, seed in (("train", cfg.problems, cfg.seed), ("eval", cfg.eval_problems, cfg.seed + 10_000)):
        problems = make_problems(n, seed, cfg.level)
        rows = hindsight_rows(problems, policy.respond([p.prompt for p in problems], w.expand(n, -1), sampling), markers)
        labels = torch.tensor([r[2] for r in rows])
        if labels.min() == labels.max():
            raise DataError(f"{split} problems: every sample was {'right' if labels[0] else 'wrong'}, nothing to learn "
                            f"from; use more --samples or --problems, or --level one-step")
        data[split] = (head.features([r[0] for r in rows], [r[1] for r in rows], progress=True), labels)
        ids: dict[str, int] = {}  # rows of one problem (its question text) share an id: a cross-validation group
        groups[split] = torch.tensor([ids.setdefault(r[0][-1]["content"], len(ids)) for r in rows])
    penalty, cv_log_loss = cfg.weight_decay, None
    if penalty is None:
        penalty, cv_log_loss = choose_weight_decay(*data["train"], groups["train"])
    head.weight, head.bias = fit_probe(*data["train"], penalty)
    (x, y), rate = data["eval"], float(data["train"][1].mean())
    p = torch.sigmoid(x @ head.weight + head.bias)
    head.record = {"objective": "arithmetic", "level": cfg.level, "policy": cfg.policy, "weights": w.tolist(),
                   "prefixes": {s: len(d[1]) for s, d in data.items()}, "train_positive_rate": rate,
                   "weight_decay": penalty,
                   "cv_log_loss": cv_log_loss and {str(k): v if math.isfinite(v) else None for k, v in cv_log_loss.items()},
                   "heldout": {"auroc": float(roc_auc_score(y.numpy(), p.numpy())),
                               "brier": float((p - y).square().mean()),
                               "brier_base_rate": float((rate - y).square().mean())}}
    with atomic_directory(cfg.output_dir) as tmp:
        head.save(tmp)
    return {"value_head": cfg.output_dir, **head.record}
