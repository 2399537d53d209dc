"""Reward-model choices of docs/design.md, measured over seeds on a validation slice the models never saw.

    .venv/bin/python scripts/sweep_reward_models.py --variant base --variant long_reply max_length=160 \
        prompt_max_tokens=48 --seeds 0 1 --output rm_sweep.json

Each variant is the quickstart's reward model (`train-rm` on the bundled HH train pairs, the orchestrator's
validation slice left out) with some `RewardModelConfig` fields overridden. Every (variant, seed) is trained
once and scored on that validation slice (about 360 pairs; used to choose) and on the bundled test pairs (500
per split; reported, not used to choose), with its wall time (training plus scoring the test pairs). Results
are rewritten after every run, so an interrupted sweep keeps what it finished. With --keep and several seeds, each
variant's seed ensemble (the mean of its models' rewards) is scored on the test pairs too.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch
import yaml

from preforch.config import HH_TEST, HH_TRAIN
from preforch.data.loaders import load_preferences
from preforch.data.schema import in_validation
from preforch.io import atomic_write_json
from preforch.models import make_accelerator
from preforch.orchestrator.config import OrchestratorConfig
from preforch.rewards.config import RewardModelConfig
from preforch.rewards.multihead import MultiHeadRewardModel
from preforch.rewards.training import pair_scores, pairwise_accuracy, train_reward_models


def _scalar(text: str):
    """A number where the text is one (YAML reads '1e-3' as a string), else the YAML scalar."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return yaml.safe_load(text)


def parse_variants(tokens: list[list[str]]) -> dict[str, dict]:
    """[[name, key=value, ...], ...] -> {name: {field: value}}, values read as numbers or YAML scalars."""
    fields = {f.name for f in dataclasses.fields(RewardModelConfig)}
    variants = {}
    for name, *pairs in tokens:
        overrides = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or key not in fields:
                raise SystemExit(f"--variant {name}: expected FIELD=VALUE with a RewardModelConfig field, got {pair!r}")
            overrides[key] = _scalar(value)
        variants[name] = overrides
    return variants


def examples(specs: list[str], keep=lambda pair: True) -> list[tuple]:
    """The pairs of specs that `keep` accepts, as (objective index, prompt, chosen, rejected)."""
    return [(k, p.prompt, p.chosen, p.rejected) for k, spec in enumerate(specs) for p in load_preferences(spec) if keep(p)]


def validation_pairs(fraction: float) -> list[tuple]:
    """The validation slice of the HH training pairs."""
    return examples(HH_TRAIN, lambda p: in_validation(p, fraction))


@torch.no_grad()
def seed_ensemble_accuracy(paths: list[str], cfg: RewardModelConfig, device) -> dict[str, float]:
    """Test accuracy per objective of the mean reward of several K-head models (one per seed)."""
    test = examples(HH_TEST)
    margins = torch.zeros(len(test))
    for path in paths:
        model = MultiHeadRewardModel.from_pretrained(path).to(device).eval()
        margins += torch.cat([torch.sub(*pair_scores(model, model.tokenizer, test[s:s + 64], cfg, device)).cpu()
                              for s in range(0, len(test), 64)])
    heads = torch.tensor([k for k, *_ in test])
    return {o: float((margins[heads == k] > 0).float().mean()) for k, o in enumerate(cfg.objectives)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", nargs="+", action="append", required=True, metavar="NAME [FIELD=VALUE ...]")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--output", default="rm_sweep.json")
    ap.add_argument("--keep", help="save each model in KEEP/<variant>_<seed> (default: discard)")
    args = ap.parse_args()
    variants = parse_variants(args.variant)
    fraction = OrchestratorConfig.validation_fraction
    validation = validation_pairs(fraction)
    device = make_accelerator().device
    results = []
    for seed in args.seeds:
        for name, overrides in variants.items():
            cfg = RewardModelConfig(train_data=HH_TRAIN, eval_data=HH_TEST, holdout_validation=fraction, seed=seed,
                                    **overrides)
            with tempfile.TemporaryDirectory() as tmp:
                cfg = dataclasses.replace(cfg, output_dir=f"{args.keep}/{name}_{seed}" if args.keep else tmp)
                start = time.perf_counter()
                _, metrics = train_reward_models(cfg)
                seconds = time.perf_counter() - start
                val, test = {}, {}
                for out, m in metrics.items():  # one K-head model, or one single-head model per objective
                    model = MultiHeadRewardModel.from_pretrained(out).to(device)
                    ks = [cfg.objectives.index(o) for o in m["objectives"]]
                    own = [(ks.index(k), *rest) for k, *rest in validation if k in ks]
                    val.update(zip(m["objectives"], pairwise_accuracy(model, model.tokenizer, own, cfg, device, len(ks))))
                    test.update(m["eval_accuracy"])
            row = {"variant": name, "seed": seed, "overrides": overrides, "seconds": round(seconds, 1),
                   "validation": val, "test": test, "validation_pairs": len(validation)}
            print(row, flush=True)
            results.append(row)
            atomic_write_json(args.output, {"runs": results})
    if args.keep and len(args.seeds) > 1:
        ensembles = {name: seed_ensemble_accuracy([f"{args.keep}/{name}_{seed}" for seed in args.seeds],
                                                  RewardModelConfig(**overrides), device)
                     for name, overrides in variants.items() if overrides.get("multi_head", True)}
        print("seed ensembles, test accuracy:", ensembles, flush=True)
        atomic_write_json(args.output, {"runs": results, "seed_ensembles": ensembles})


if __name__ == "__main__":
    main()
