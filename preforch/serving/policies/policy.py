"""The one interface through which every method answers under a preference (DESIGN.md section 6).

A preference policy answers P prompts under per-prompt weights w [P, K] over its `objectives`. Answering is
two steps, so that `evaluate` can cache the expensive one and serve a whole grid of preferences from it:

- `candidates(prompts, weightings, sampling)`: all the policy samples, as rows of texts. A policy whose samples
  do not depend on w (`shares_candidates`: plain, best-of-N over a plain model) gives one row per prompt,
  [P][n], serving every weighting; any other gives row l * P + p for prompt p under weightings[l], [L * P][n].
- `select(prompts, candidates, weightings, sampling)`: the replies under each weighting, [L][P][n]; cheap.

`respond(prompts, weights, sampling)` is the two in a row for one weighting. Kinds live in `serving/policies/kinds.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

import torch

from preforch.data.schema import Message
from preforch.data.weights import check_simplex
from preforch.errors import WeightsError
from preforch.generation.sampling import Prompts, Replies, SamplingConfig

if TYPE_CHECKING:
    from preforch.rewards.ensemble import RewardEnsemble


def same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


@dataclass(frozen=True)
class LoadOptions:
    """How a policy's parts load; never saved with it.

    ensembles: reward ensembles the caller holds already, by the folder they came from; a kind reuses one (and
    its score cache, so evaluate does not score the same candidates twice) rather than loading that folder again.
    opened: folders whose preference_policy.json is being read, so a kind whose base policy is its own folder
    loads the model there instead of the file again.
    backend: what samples candidates for the kinds that sample a causal LM (plain, best-of-n over it, wic, moslim).
    cache_size: the bound on the score cache of every ensemble a kind loads itself (`serve --cache_size`: a
    long-lived server's memory stays bounded); None keeps every score (evaluate, generate).
    """

    trust_remote_code: bool = False
    ensembles: Mapping[str, "RewardEnsemble"] = field(default_factory=dict)
    opened: tuple[str, ...] = ()
    backend: str = "hf"  # how candidates are sampled: hf (transformers generate) | vllm (serving/backends/vllm_lm.py)
    cache_size: int | None = None

    def ensemble(self, path: str) -> "RewardEnsemble":
        from preforch.rewards.ensemble import RewardEnsemble

        held = [e for p, e in self.ensembles.items() if same_path(p, path)]
        if held:
            return held[0]
        ensemble = RewardEnsemble.load(path)
        ensemble.bound_cache(self.cache_size)
        return ensemble


class PreferencePolicy(ABC):
    """A policy that answers prompts under per-prompt preference weights.

    A kind sets `kind` (its name in KINDS) and `Settings` (a frozen dataclass: the fields its
    preference_policy.json holds; fields with metadata `path=True` are paths, stored relative to the file when
    inside its folder), takes `(settings, options)` in its constructor, and implements `objectives` and
    `candidates`; `select` defaults to each weighting's own rows. A kind whose training writes a file of its own
    into the policy folder names it in `marker_file`: a folder with that file and no preference_policy.json is
    served as that kind (`serving/policies/folder.py`'s `read_folder`, asking KINDS in their order).
    """

    kind: ClassVar[str]
    Settings: ClassVar[type]
    marker_file: ClassVar[str | None] = None
    shares_candidates: bool = False

    def __init__(self, settings, options: LoadOptions):
        self.settings = settings

    def describe(self) -> dict:
        """Its kind and settings as JSON values: what evaluate records, and keys its generation cache by."""
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.settings).items()}
        return {"kind": self.kind, **settings}

    @property
    @abstractmethod
    def objectives(self) -> tuple[str, ...]:
        """The objectives, in order, that the K columns of the weights refer to."""

    @abstractmethod
    def candidates(self, prompts: Prompts, weightings: Sequence[torch.Tensor], sampling: SamplingConfig) -> Replies:
        """Sampled texts for `prompts` under each of `weightings` ([P, K] each): [P][n] rows when
        `shares_candidates`, else [L * P][n] (row l * P + p: prompt p under weightings[l])."""

    def select(self, prompts: Prompts, candidates: Replies, weightings: Sequence[torch.Tensor],
               sampling: SamplingConfig) -> list[Replies]:
        """Replies under each weighting, [L][P][n], from `candidates` (as `candidates` made them for the same
        weightings; a policy that shares candidates also serves weightings it did not sample under)."""
        p = len(prompts)
        return [candidates if self.shares_candidates else candidates[l * p:(l + 1) * p] for l in range(len(weightings))]

    def conditioned(self, prompts: Prompts, weights: torch.Tensor) -> list[tuple[Message, ...]]:
        """The prompts as the model reads them under weights [P, K] (unchanged unless w goes into the prompt)."""
        return [tuple(p) for p in prompts]

    def asked(self, prompts: Prompts, weightings: Sequence[torch.Tensor]) -> list[tuple[Message, ...]]:
        """The prompt of each candidates row as the model reads it: [P] when shared, else [L * P]."""
        if self.shares_candidates:
            return [tuple(p) for p in prompts]
        return [p for w in weightings for p in self.conditioned(prompts, w)]

    def check_sampling(self, sampling: SamplingConfig) -> None:
        """Refuse sampling settings this kind cannot answer with (`ConfigError`); any are fine by default."""

    def check_weights(self, prompts: Prompts, weightings: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Each weighting as float32 [P, K]; `WeightsError` for a wrong shape or K, or rows off the simplex."""
        checked = []
        for w in weightings:
            w = check_simplex(w, self.objectives, f"{self.kind} policy weights")
            if w.dim() != 2 or len(w) != len(prompts):
                raise WeightsError(f"{self.kind} policy weights: expected one row per prompt, [{len(prompts)}, "
                                   f"{len(self.objectives)}], got shape {tuple(w.shape)}")
            checked.append(w)
        return checked

    def tokenizer(self):
        """The tokenizer of the model that writes the replies (the server counts `usage` with it), or None."""
        if isinstance(getattr(self, "base", None), PreferencePolicy):  # a kind wrapping another (best-of-n)
            return self.base.tokenizer()
        owner = getattr(self, "lm", self)  # a CausalLM, or a kind loading its own model
        return owner.model_and_tokenizer()[1] if hasattr(owner, "model_and_tokenizer") else None

    def respond(self, prompts: Prompts, weights: torch.Tensor, sampling: SamplingConfig | None = None) -> Replies:
        """Replies [P][n] (n = sampling.num_candidates, default one) to `prompts` under weights [P, K]."""
        sampling = sampling or SamplingConfig(num_candidates=1)
        weightings = self.check_weights(prompts, [weights])
        self.check_sampling(sampling)
        return self.select(prompts, self.candidates(prompts, weightings, sampling), weightings, sampling)[0]


class PromptTagged(ABC):
    """A policy that reads its preference from a tag in its prompt; evaluate checks that it reads it
    (evaluation/tag_reading.py). `spec` tags prompts with conditioning values (a `WicSpec`)."""

    spec: object

    @abstractmethod
    def language_model(self):
        """(model, tokenizer) that reads the tagged prompts."""
