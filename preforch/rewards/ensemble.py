"""`RewardEnsemble`: K objectives from one or more reward sources -> `Scores` [B, K], raw or normalised, with the
mask of where each objective applies (rewards/scores.py): the one place applicability enters the pipeline.

Saved as a folder holding `ensemble.json` (objective names, source specs, normalisation statistics);
reward-model weights live in their own folders, referenced relative to it when inside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from preforch.data.schema import Message, PreferenceDataset, content_key
from preforch.errors import ConfigError, ObjectiveMismatchError, PreforchError
from preforch.io import atomic_write_json, read_json
from preforch.lru import LRUCache
from preforch.rewards.config import EnsembleConfig
from preforch.rewards.normalization import ZScore, apply_zscore, fit_zscore, replace_objectives
from preforch.rewards.scores import Scores
from preforch.rewards.sources import RewardSource, source_from_spec

ENSEMBLE_FILE = "ensemble.json"


def check_objectives(expected: Sequence[str], got: Sequence[str], what: str) -> None:
    """Raise `ObjectiveMismatchError` unless `got` names the same objectives in the same order."""
    if list(expected) != list(got):
        raise ObjectiveMismatchError(f"{what}: objectives {list(got)} do not match the reward ensemble's {list(expected)}")


REWARD_MODEL_ENCODER = "reward-model"  # the `--encoder` alias for `reward_model_encoder`


class RewardEnsemble:
    """Scores (prompt, response) pairs on every objective, with a per-pair cache of raw scores."""

    def __init__(self, sources: Sequence[RewardSource], normalizer: ZScore | None = None, batch_size: int = 256):
        self.sources = list(sources)
        self.objectives = tuple(o for s in self.sources for o in s.objectives)
        if not self.objectives:
            raise ConfigError("a reward ensemble needs at least one objective")
        dupes = sorted({o for o in self.objectives if self.objectives.count(o) > 1})
        if dupes:
            raise ConfigError(f"objective(s) {dupes} are scored by more than one reward source")
        if normalizer is not None and normalizer.mean.numel() != len(self.objectives):
            raise ObjectiveMismatchError(f"normalisation has {normalizer.mean.numel()} objectives, ensemble has {len(self.objectives)}")
        self.normalizer = normalizer
        self.batch_size = batch_size
        self._cache = LRUCache()  # pair -> (raw [K], applies [K]); unbounded unless `bound_cache`

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    @property
    def pairs_scored(self) -> int:
        """(prompt, response) pairs this instance has scored: each once, repeats come from its cache."""
        return len(self._cache)

    def clear_cache(self) -> None:
        """Forget the scores held so far."""
        self._cache.clear()

    def bound_cache(self, max_pairs: int | None) -> None:
        """Keep the scores of at most `max_pairs` (prompt, reply) pairs, the least recently used dropped first
        (None: all, the default): a long-lived server sees new replies forever."""
        self._cache.resize(max_pairs)

    def _score_sources(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], columns: dict) -> Scores:
        """Raw `Scores` [b, K] from every source. A source may say an objective does not apply (None from a rule,
        TRL's convention, arriving as NaN) only when its kind declares `may_not_apply`; a NaN from any other
        source (a reward model) is an error naming it, never taken for "not applicable"."""
        parts = []
        for src in self.sources:
            raw = (src.score(prompts, responses, **columns) if columns else src.score(prompts, responses)).float()
            if raw.isnan().any() and not getattr(src, "may_not_apply", False):
                i = int(raw.isnan().any(-1).nonzero()[0])
                raise PreforchError(f"reward source {list(src.objectives)} ({src.kind}) scored NaN for reply {i} "
                                    f"{responses[i][:60]!r}; only a rule may say an objective does not apply (None)")
            parts.append(Scores.from_nan(raw))
        return Scores.cat(parts, dim=-1)

    def score_raw(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], progress: bool = False,
                  columns: dict[str, Sequence] | None = None) -> Scores:
        """Raw rewards [B, K] and where they apply; pairs scored before come from the cache. `columns`: dataset
        columns (one value per response, e.g. a `solution` for exact match) handed to the sources as TRL does."""
        if len(prompts) != len(responses):
            raise PreforchError(f"{len(prompts)} prompts but {len(responses)} responses")
        # a dataset column (e.g. the right answer) is part of what was scored, so part of the cache key
        extra = [repr([values[i] for values in columns.values()]) if columns else "" for i in range(len(responses))]
        keys = [content_key(p, r) + e for p, r, e in zip(prompts, responses, extra)]
        found = self._cache.found(keys)
        todo = sorted({k: i for i, k in enumerate(keys) if k not in found}.values())
        bar = tqdm(total=len(todo), desc="scoring", unit="resp", disable=not progress or not todo)
        for s in range(0, len(todo), self.batch_size):
            idx = todo[s:s + self.batch_size]
            cols = {name: [values[i] for i in idx] for name, values in (columns or {}).items()}
            scores = self._score_sources([prompts[i] for i in idx], [responses[i] for i in idx], cols)
            for j, i in enumerate(idx):  # each row its own storage: evicting it frees it
                found[keys[i]] = self._cache[keys[i]] = (scores.values[j].clone(), scores.applies[j].clone())
            bar.update(len(idx))
        bar.close()
        if not keys:
            return Scores.dense(torch.empty(0, self.num_objectives))
        rows = [found[k] for k in keys]  # a bounded cache may have dropped some of this call's already
        return Scores(torch.stack([v for v, _ in rows]), torch.stack([a for _, a in rows]))

    def normalize(self, raw: Scores) -> Scores:
        if self.normalizer is None:
            raise PreforchError("the reward ensemble has no normalisation statistics: call fit_normalization first")
        return apply_zscore(raw, self.normalizer)

    def score(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], progress: bool = False,
              columns: dict[str, Sequence] | None = None) -> Scores:
        """Normalised rewards r~ [B, K] using the stored statistics, and where they apply."""
        return self.normalize(self.score_raw(prompts, responses, progress, columns))

    def score_pairs(self, data: PreferenceDataset, progress: bool = False) -> tuple[Scores, Scores]:
        """Normalised scores of each pair's chosen [N, K] and rejected [N, K] reply."""
        s = self.score(*data.all_replies(), progress=progress)
        return s[:len(data)], s[len(data):]

    def fit_normalization(self, data: PreferenceDataset, progress: bool = True, skip: Sequence[int] = ()) -> ZScore:
        """Fit z-scores on the chosen and rejected responses of `data` (the reference set), each objective on the
        replies it applies to, and keep them; the objectives at `skip` are fitted elsewhere (see `fit_zscore`)."""
        prompts, responses = data.all_replies()
        self.normalizer = fit_zscore(self.score_raw(prompts, responses, progress), objectives=self.objectives, skip=skip)
        return self.normalizer

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        atomic_write_json(path / ENSEMBLE_FILE, {
            "objectives": list(self.objectives),
            "sources": [src.spec(path) for src in self.sources],
            "normalization": self.normalizer.to_dict() if self.normalizer else None,
        })

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "RewardEnsemble":
        path = Path(path)
        file = path / ENSEMBLE_FILE if path.is_dir() else path
        if not file.is_file():
            raise ConfigError(f"{file}: no reward ensemble here (expected {ENSEMBLE_FILE})")
        cfg = read_json(file)
        try:
            sources = [source_from_spec(s, str(file.parent), device) for s in cfg["sources"]]
            norm = ZScore.from_dict(cfg["normalization"], f"{file}: normalization") if cfg.get("normalization") else None
            objectives = cfg["objectives"]
        except (KeyError, TypeError, AttributeError) as e:
            raise ConfigError(f"{file}: malformed ensemble file ({type(e).__name__}: {e})") from None
        ens = cls(sources, norm)
        check_objectives(objectives, ens.objectives, str(file))
        return ens


def reward_model_encoder(ensemble: RewardEnsemble) -> str:
    """The `encoder/` folder (a Hugging Face model) of the ensemble's first preforch reward model: what
    `--encoder reward-model` reads prompts with. ArmoRM's gate reads the prompt through its reward model's
    backbone the same way; that encoder has learnt which parts of a dialogue matter to each objective."""
    for src in ensemble.sources:
        folder = Path(getattr(src, "path", "")) / "encoder"
        if getattr(src, "path", None) and (folder / "config.json").is_file():
            return str(folder)
    raise ConfigError(f"encoder {REWARD_MODEL_ENCODER!r}: none of the ensemble's sources "
                      f"{[s.spec().get('path', s.spec().get('rule')) for s in ensemble.sources]} is a preforch reward "
                      "model folder with an encoder/ inside (train-rm makes one); give a hub id or path instead")


def build_ensemble(cfg: EnsembleConfig, progress: bool = True) -> RewardEnsemble:
    """`build-ensemble`: reward models + rules, z-scores fitted on the reference set, saved to cfg.output_dir."""
    from preforch.data.loaders import load_many
    from preforch.rewards.sources import HFRewardModel, RuleReward

    sources = [HFRewardModel(p, trust_remote_code=cfg.trust_remote_code) for p in cfg.reward_models]
    ensemble = RewardEnsemble(sources + [RuleReward.from_spec(r) for r in cfg.rules])
    own = cfg.objective_references
    missing = sorted(set(own) - set(ensemble.objectives))
    if missing:
        raise ConfigError(f"objective_reference: objective(s) {missing} not in the ensemble's {list(ensemble.objectives)}")
    own_columns = [ensemble.objectives.index(o) for o in own]
    ensemble.fit_normalization(load_many(cfg.reference_data, cfg.max_reference_pairs), progress, skip=own_columns)
    for objective, spec in own.items():
        replies = load_many([spec], cfg.max_reference_pairs).all_replies()
        k = ensemble.objectives.index(objective)
        others = [j for j in range(ensemble.num_objectives) if j != k]
        fitted = fit_zscore(ensemble.score_raw(*replies, progress), objectives=ensemble.objectives, skip=others)
        ensemble.normalizer = replace_objectives(ensemble.normalizer, fitted, [k])
    ensemble.save(cfg.output_dir)
    return ensemble
