"""Kind `mahalo`: a train-mahalo policy, its heads mixed by each prompt's w (`z = sum_k w_k W_k h`, one trunk
pass per token). With `guide` (a reward-ensemble folder) and `step_candidates` N > 1, decoding is step-level
best-of-N (`guided_decoding.py`), each step's candidates scored on their prefixes by `step_scorers.py` and
combined by the same w; guided decoding serves one reply per prompt at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from preforch.errors import ConfigError
from preforch.generation.combined_reward import combined_reward
from preforch.generation.multi_head import MAHALO_FILE, MultiHeadLM, WeightedView
from preforch.generation.sampling import SamplingConfig, encode_prompts, reply_rows
from preforch.rewards.scores import Scores
from preforch.serving.policies.policy import LoadOptions, PreferencePolicy, Prompts, Replies


@dataclass(frozen=True)
class MahaloSettings:
    """policy: a train-mahalo policy folder; guide: reward ensemble whose models score step prefixes (None:
    unguided); step_candidates: N of step-level best-of-N; boundary: 'paragraph', 'sentence' or a literal marker;
    min_step_tokens / max_step_tokens: a step's length bounds; reuse_cache: continue the winner's KV cache;
    rollouts: arithmetic problems: Monte Carlo rollouts (of rollout_tokens) that value each unfinished prefix (0:
    the guide's scores alone); value_head: a train-value-head folder that values them in one forward pass instead
    (the PRM; rollouts are its baseline)."""

    policy: str = field(metadata={"path": True})
    guide: str | None = field(default=None, metadata={"path": True})
    step_candidates: int = 1
    boundary: str = "paragraph"
    min_step_tokens: int = 8
    max_step_tokens: int = 64
    reuse_cache: bool = True
    rollouts: int = 0
    rollout_tokens: int = 48
    value_head: str | None = field(default=None, metadata={"path": True})

    def __post_init__(self):
        if min(self.step_candidates, self.min_step_tokens, self.max_step_tokens, self.rollout_tokens) < 1 or self.rollouts < 0:
            raise ConfigError("step_candidates, min_step_tokens, max_step_tokens, rollout_tokens: must be >= 1; "
                              "rollouts >= 0")
        if self.rollouts and self.value_head:
            raise ConfigError("rollouts and value_head both value arithmetic prefixes: give one")
        if self.step_candidates > 1 and not self.guide:
            raise ConfigError("step_candidates > 1: needs guide (a reward-ensemble folder that scores the steps)")


class MahaloPolicy(PreferencePolicy):
    kind = "mahalo"
    Settings = MahaloSettings
    marker_file = MAHALO_FILE

    def __init__(self, settings: MahaloSettings, options: LoadOptions):
        import json

        from preforch.models import resolve

        super().__init__(settings, options)
        file = Path(resolve(settings.policy)) / MAHALO_FILE
        try:
            self._objectives = tuple(json.loads(file.read_text())["objectives"])
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"{file}: not a MAHALO policy ({type(e).__name__}: {e}); preforch train-mahalo makes one") from None
        self.options, self._loaded, self._scorer, self._value_head = options, None, None, None

    @property
    def objectives(self) -> tuple[str, ...]:
        return self._objectives

    def check_sampling(self, sampling: SamplingConfig) -> None:
        if self.settings.step_candidates > 1 and sampling.temperature == 0:
            raise ConfigError("mahalo guided decoding samples its step candidates: temperature must be > 0")

    def model_and_tokenizer(self):
        if self._loaded is None:
            self._loaded = MultiHeadLM.from_pretrained(self.settings.policy, self.options.trust_remote_code)
        return self._loaded

    def step_scorer(self):
        if self._scorer is None:
            from preforch.serving.decoding.step_scorers import EnsembleStepScorer

            self._scorer = EnsembleStepScorer(self.options.ensemble(self.settings.guide), self.objectives)
        return self._scorer

    def candidates(self, prompts: Prompts, weightings: Sequence[torch.Tensor], sampling: SamplingConfig) -> Replies:
        from transformers import set_seed

        from preforch.serving.decoding.mixed_decoding import end_tokens, mixed_decode

        model, tok = self.model_and_tokenizer()
        asked, weights, n = self.asked(prompts, weightings), torch.cat(weightings).to(model.device), sampling.num_candidates
        set_seed(sampling.seed)
        if self.settings.step_candidates > 1:
            return [[self.guided(model, tok, p, w, sampling) for _ in range(n)] for p, w in zip(asked, weights)]
        out: Replies = []
        for s in tqdm(range(0, len(asked), sampling.batch_size), desc="mixing heads", unit="batch"):
            enc = encode_prompts(tok, asked[s:s + sampling.batch_size], model.device)
            w = weights[s:s + sampling.batch_size].repeat_interleave(n, 0)
            tokens = mixed_decode([WeightedView(model, w)], enc["input_ids"].repeat_interleave(n, 0),
                                  enc["attention_mask"].repeat_interleave(n, 0),
                                  torch.ones(len(w), 1, device=model.device),  # one model: weight 1, on its device
                                  max_new_tokens=sampling.max_new_tokens, eos_ids=end_tokens(model, tok),
                                  pad_id=tok.pad_token_id, temperature=sampling.temperature, top_p=sampling.top_p)
            out += reply_rows(tok.batch_decode(tokens, skip_special_tokens=True), n)
        return out

    def guided(self, model, tok, prompt, w: torch.Tensor, sampling: SamplingConfig) -> str:
        """One reply to `prompt` by step-level best-of-N under weights w [K]."""
        from preforch.serving.decoding.guided_decoding import StepRule, guided_decode
        from preforch.serving.decoding.mixed_decoding import end_tokens

        s = self.settings
        ids = encode_prompts(tok, [prompt], model.device)["input_ids"]
        text = lambda t: tok.decode(t, skip_special_tokens=True)
        tokens = guided_decode(WeightedView(model, w[None]), ids, lambda rows: combined_reward(self.step_scores(prompt, ids, rows, w), w.cpu()),
                               num_candidates=s.step_candidates, rule=StepRule.named(s.boundary, s.min_step_tokens,
                                                                                     s.max_step_tokens),
                               decode=text, max_new_tokens=sampling.max_new_tokens, eos_ids=end_tokens(model, tok),
                               temperature=sampling.temperature, top_p=sampling.top_p,
                               reuse_cache=s.reuse_cache)
        return text(tokens).strip()

    def step_scores(self, prompt, prompt_ids: torch.Tensor, rows: list[list[int]], w: torch.Tensor) -> Scores:
        """Prefix scores [N, K] of candidate token lists and where they apply: the guide ensemble's, and for an
        arithmetic problem with `rollouts` or `value_head` set, the arithmetic column replaced by the checker on
        finished replies and the Monte Carlo or value-head value on unfinished ones, z-scored like the guide's other
        columns (`EnsembleStepScorer.checker_zscores`) so that w weighs objectives on one scale."""
        from preforch.data.arithmetic import solve
        from preforch.serving.decoding.mixed_decoding import end_tokens
        from preforch.serving.decoding.step_scorers import arithmetic_step_value, with_column

        s = self.settings
        model, tok = self.model_and_tokenizer()
        texts = [tok.decode(r, skip_special_tokens=True) for r in rows]
        scores = self.step_scorer().scores(prompt, texts)
        valued = (s.rollouts or s.value_head) and "arithmetic" in self.objectives
        answer = solve(prompt[-1]["content"]) if valued else None
        if answer is not None:
            eos = end_tokens(model, tok)
            values = self.value_head().score(prompt, texts).tolist() if s.value_head else [None] * len(texts)
            checked = torch.tensor([arithmetic_step_value(t, answer, bool(r) and r[-1] in eos,
                                                          lambda _, n, r=r: self.rollout(prompt_ids, r, w, n),
                                                          s.rollouts, value=v) for t, r, v in zip(texts, rows, values)])
            scores = with_column(scores, self.objectives.index("arithmetic"),
                                 self.step_scorer().checker_zscores("arithmetic", checked))
        return scores

    def value_head(self):
        if self._value_head is None:
            from preforch.serving.decoding.value_head import ValueHead

            self._value_head = ValueHead.load(self.settings.value_head, self.options.trust_remote_code)
        return self._value_head

    def rollout(self, prompt_ids: torch.Tensor, tokens: list[int], w: torch.Tensor, n: int) -> list[str]:
        """n sampled continuations (temperature 1) of the reply begun with `tokens`, under weights w [K]."""
        from preforch.serving.decoding.mixed_decoding import end_tokens, mixed_decode

        model, tok = self.model_and_tokenizer()
        ids = torch.cat([prompt_ids, torch.tensor([tokens], dtype=prompt_ids.dtype, device=prompt_ids.device)], 1)
        ids = ids.repeat(n, 1)
        new = mixed_decode([WeightedView(model, w[None])], ids, torch.ones_like(ids), torch.ones(n, 1, device=ids.device),
                           max_new_tokens=self.settings.rollout_tokens, eos_ids=end_tokens(model, tok),
                           pad_id=tok.pad_token_id, temperature=1.0)
        return tok.batch_decode(new, skip_special_tokens=True)
