"""Cross-fitted scores: every training pair scored by reward models that never trained on it.

A reward model scores its own training pairs from memory, so targets (Eq. 7) and validation margins
computed from those scores are over-confident. `train-rm --cross_fit_folds k` also trains k fold models
(fold f without the pairs of fold f, assigned by `pair_fold`); here each pair is scored by the models of
its own fold. Rule sources (nothing trained) are shared.
"""

from __future__ import annotations

from pathlib import Path

import torch

from preforch.data.schema import PreferenceDataset, pair_fold
from preforch.errors import ConfigError, PreforchError
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.normalization import ZScore, apply_zscore, fit_zscore, replace_objectives
from preforch.rewards.scores import Scores

FOLDS_DIR = "folds"


def fold_dirs(model_dir: str | Path) -> list[Path]:
    """The cross-fitting models saved beside a reward model (`<model_dir>/folds/<f>`, f = 0..k-1), or []."""
    root = Path(model_dir) / FOLDS_DIR
    dirs = sorted((d for d in root.iterdir() if d.name.isdigit()), key=lambda d: int(d.name)) if root.is_dir() else []
    if [int(d.name) for d in dirs] != list(range(len(dirs))):
        raise ConfigError(f"{root}: expected fold folders 0..k-1, found {[d.name for d in dirs]}")
    return dirs


def fold_ensembles(ensemble: RewardEnsemble) -> list[RewardEnsemble]:
    """One ensemble per fold: each learned source (its kind's `learned`, rewards/sources.py) replaced by its fold
    model (`src.at(fold folder)`); every learned source must have the same number of folds (at least 2)."""
    per_source: list[list] = []
    for src in ensemble.sources:
        if not getattr(src, "learned", False):  # a kind that declares nothing learned nothing
            per_source.append([src])
            continue
        dirs = fold_dirs(src.path)
        if len(dirs) < 2:
            raise ConfigError(f"reward model {src.path}: no cross-fitting folds; train it with "
                              f"`preforch train-rm --cross_fit_folds 2` (or turn cross_fit off)")
        per_source.append([src.at(d) for d in dirs])
    counts = {len(s) for s in per_source if len(s) > 1}
    if len(counts) != 1:
        raise ConfigError(f"reward models have different numbers of cross-fitting folds: {sorted(counts)}")
    k = counts.pop()
    return [RewardEnsemble([s[f] if len(s) > 1 else s[0] for s in per_source]) for f in range(k)]


def fold_zscore(raw: Scores, ensemble: RewardEnsemble) -> ZScore:
    """Z-scores of one fold's raw scores [M, K], each objective fitted on the fold's replies it applies to; an
    objective that applies to fewer than 2 of them (exact match in a fold with no problem) keeps `ensemble`'s
    stored statistics, as a rule scores alike in every fold."""
    few = (raw.applies.sum(0) < 2).nonzero().flatten().tolist()
    fitted = fit_zscore(raw, objectives=ensemble.objectives, skip=few)
    if not few:
        return fitted
    if ensemble.normalizer is None:
        raise PreforchError(f"cross-fitting: objective(s) {[ensemble.objectives[k] for k in few]} apply to fewer than "
                            "2 replies of a fold and the ensemble has no normalisation statistics to take instead")
    return replace_objectives(fitted, ensemble.normalizer, few)


def cross_fitted_pair_scores(ensemble: RewardEnsemble, data: PreferenceDataset,
                             progress: bool = False) -> tuple[Scores, Scores]:
    """Normalised scores (chosen [N, K], rejected [N, K]) of `data`, each pair scored by its fold's models.

    Each fold's scores are z-scored on that fold's own replies (`fold_zscore`): fold models differ in scale from
    the main model and from each other, and the fold's pairs are a held-out reference set for them.
    """
    folds = fold_ensembles(ensemble)
    fold_of = [pair_fold(p, len(folds)) for p in data]
    values = torch.full((2, len(data), ensemble.num_objectives), torch.nan)  # [chosen | rejected, N, K]
    applies = torch.zeros_like(values, dtype=torch.bool)
    for f, fold_ensemble in enumerate(folds):
        idx = [i for i, g in enumerate(fold_of) if g == f]
        if not idx:
            continue
        raw = fold_ensemble.score_raw(*data.subset(idx).all_replies(), progress=progress)
        z = apply_zscore(raw, fold_zscore(raw, ensemble)).view(2, len(idx), -1)
        values[:, idx], applies[:, idx] = z.values, z.applies
    return Scores(values[0], applies[0]), Scores(values[1], applies[1])
