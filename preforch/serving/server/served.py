"""What `preforch serve` answers with, and the blocking work behind each route: a preference policy, and optionally
the orchestrator that supplies weights and the reward ensemble that scores replies (serving/server/http.py routes to it)."""

from __future__ import annotations

import ctypes
import random
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

import torch

from preforch.errors import ConfigError
from preforch.generation.combined_reward import combined_reward
from preforch.generation.sampling import SamplingConfig
from preforch.orchestrator.preference import preference_weights
from preforch.serving.config import DEFAULT_CACHE_SIZE
from preforch.serving.policies.policy import PreferencePolicy
from preforch.serving.server.api_schema import by_objective, cut_at_stop, usage
from preforch.serving.server.batcher import Job
from preforch.serving.server.prompt_text import TemplateReader

if TYPE_CHECKING:
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.scores import Scores


def release_freed_memory() -> None:
    """Hand the pages the C allocator holds free back to the system (glibc's `malloc_trim`; nothing elsewhere).
    Every generation call allocates and frees tensors of new shapes; glibc keeps what was freed in its heaps, so
    without this a server's resident memory kept climbing under new prompts though nothing live grew (the soak
    run in docs/benchmarks.md). Takes a few milliseconds."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim this way
        return None


_malloc_trim = _find_malloc_trim()


@dataclass
class Served:
    """What the server answers with: a policy (None: a reward-only server), and optionally the orchestrator that
    supplies weights and the ensemble that scores replies. `name` is the model id /v1/models lists;
    `default_preference` a `--weights` spec for requests that give none; `api_key` the bearer token /v1 routes want
    (None: open); `reader` reads formatted prompt texts (/get_reward, vLLM-style scoring) back into chat messages;
    `cache_size` bounds the orchestrator's and the ensemble's caches (least recently used dropped first), so memory
    stays bounded however many distinct prompts and replies a server sees."""

    policy: Optional[PreferencePolicy]
    ensemble: Optional["RewardEnsemble"] = None
    orchestrator: Optional["PreferenceOrchestrator"] = None
    name: str = "preforch"
    batch_size: int = 8
    default_preference: Optional[str] = None
    api_key: Optional[str] = None
    reader: TemplateReader = field(default_factory=TemplateReader)
    cache_size: int = DEFAULT_CACHE_SIZE
    # generation, /v1/score and /v1/explain run in different worker threads; the models (and the ensemble's cache)
    # serve one of them at a time
    _models: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self):
        if self.policy is None and self.ensemble is None:
            raise ConfigError("a reward-only server needs a reward ensemble (serve --ensemble DIR)")
        for part in (self.orchestrator, self.ensemble):
            if part is not None:
                part.bound_cache(self.cache_size)

    @contextmanager
    def _working(self):
        """The models for one route's work, one caller at a time; after it, the memory it freed goes back to the
        system (`release_freed_memory`), so what a server holds follows what it keeps, not what it once used."""
        with self._models:
            yield
        release_freed_memory()

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.policy.objectives if self.policy is not None else self.ensemble.objectives)

    @property
    def kind(self) -> str:
        return self.policy.kind if self.policy is not None else "reward-only"

    def weights(self, prompts: Sequence, specs: Sequence[Optional[str]]) -> torch.Tensor:
        """Each prompt's weights [P, K] under its spec (None: the orchestrator's); one call per distinct spec."""
        weights = torch.empty(len(prompts), len(self.objectives))
        for spec in dict.fromkeys(specs):
            rows = [i for i, s in enumerate(specs) if s == spec]
            weights[rows] = preference_weights(spec, [prompts[i] for i in rows], self.objectives, self.orchestrator)
        return weights

    def cached(self) -> dict:
        """What the caches hold now, and their bound (/health)."""
        return {"prompts": self.orchestrator.cached_prompts if self.orchestrator is not None else 0,
                "pairs": self.ensemble.pairs_scored if self.ensemble is not None else 0, "limit": self.cache_size}

    def scores(self, prompts: Sequence, replies: Sequence[str]) -> tuple["Scores", "Scores"]:
        """(raw [B, K], normalised [B, K]) ensemble scores and where they apply (the ensemble's bounded cache
        answers pairs seen lately, e.g. the candidates best-of-N just reranked)."""
        with self._models:
            raw = self.ensemble.score_raw(list(prompts), list(replies))
        return raw, self.ensemble.normalize(raw)

    def token_count(self, text_or_prompt) -> Optional[int]:
        """Tokens of a reply (str) or of a chat prompt as the model reads it; None when the kind has no tokenizer."""
        tok = self.policy.tokenizer()
        if tok is None:
            return None
        if isinstance(text_or_prompt, str):
            return len(tok(text_or_prompt, add_special_tokens=False)["input_ids"])
        return len(tok.apply_chat_template(list(text_or_prompt), add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"])

    def answer(self, jobs: Sequence[Job]) -> list[dict]:
        """One generation call for `jobs` (equal sampling; replies cut at its stop strings): per job its weights [K],
        replies [n], with an ensemble scores [n][K] (None where an objective does not apply), and token usage.
        Blocking; run in a worker thread."""
        n, max_new_tokens, temperature, top_p, seed, stops = jobs[0].sampling
        sampling = SamplingConfig(n, max_new_tokens, temperature, top_p, self.batch_size,
                                  random.randrange(2**31) if seed is None else seed)
        prompts = [j.prompt for j in jobs]
        with self._working():
            weights = self.weights(prompts, [j.preference for j in jobs])
            replies = [[cut_at_stop(r, stops) for r in row] for row in self.policy.respond(prompts, weights, sampling)]
        scores = None
        if self.ensemble is not None:
            flat = [(p, r) for p, row in zip(prompts, replies) for r in row]
            scores = self.scores([p for p, _ in flat], [r for _, r in flat])[1].view(len(jobs), n, -1).tolist()
        out = []
        for i, (p, w, row) in enumerate(zip(prompts, weights, replies)):
            asked = self.token_count(p)
            counted = None if asked is None else usage(asked, sum(self.token_count(r) for r in row))
            out.append({"weights": w.tolist(), "replies": row, "scores": None if scores is None else scores[i],
                        "usage": counted})
        return out

    def explain(self, prompt, spec: Optional[str], sampling: SamplingConfig) -> dict:
        """What the playground shows for one prompt: the weights used (and the orchestrator's own), the policy's
        candidates with each objective's normalised score (None where it does not apply) and the combined reward
        under those weights (over the objectives that apply), and which candidate the policy chose. Blocking; run in
        a worker thread."""
        with self._working():
            weights = self.weights([prompt], [spec])  # [1, K]
            own = self.weights([prompt], [None])[0].tolist() if self.orchestrator is not None else None
            candidates = self.policy.candidates([prompt], [weights], sampling)[0]  # [n]: one weighting, one prompt
            chosen = self.policy.select([prompt], [candidates], [weights], sampling)[0][0][0]
            scores = self.scores([prompt] * len(candidates), candidates)[1] if self.ensemble is not None else None
        named = lambda row: by_objective(self.objectives, row)
        rows = None if scores is None else scores.tolist()
        combined = None if scores is None else combined_reward(scores, weights).tolist()  # [n]
        return {"objectives": list(self.objectives), "weights": named(weights[0].tolist()),
                "orchestrator_weights": own and named(own), "kind": self.policy.kind,
                "chosen": candidates.index(chosen) if chosen in candidates else None,
                "candidates": [{"text": text, "scores": None if rows is None else named(rows[i]),
                                "combined": None if combined is None else combined[i]}
                               for i, text in enumerate(candidates)]}

    def score(self, prompts: Sequence, replies: Sequence[str], specs: Sequence[Optional[str]]) -> list[dict]:
        """/v1/score: per (prompt, reply) its raw and normalised scores (None where an objective does not apply),
        the weights of its spec and the combined reward w . r~ (paper Eq. 9) over the objectives that apply.
        Blocking; run in a worker thread."""
        with self._working():
            raw, normalized = self.scores(prompts, replies)
            weights = self.weights(prompts, specs)
        reward = combined_reward(normalized, weights).tolist()
        named = lambda row: by_objective(self.objectives, row)
        return [{"index": i, "scores": named(z), "raw_scores": named(r), "weights": named(w), "reward": reward[i]}
                for i, (z, r, w) in enumerate(zip(normalized.tolist(), raw.tolist(), weights.tolist()))]
