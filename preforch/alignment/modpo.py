"""`train-policy --algorithm modpo`: MODPO (Zhou et al. 2023, "Beyond One-Preference-Fits-All Alignment"), DPO on
the pairs of one objective k with the other objectives' weighted rewards as a margin:

    L = -log sigmoid( (1 / w_k) * ( beta * (h(y_w) - h(y_l)) - sum_{j != k} w_j (r~_j(y_w) - r~_j(y_l)) ) ),
    h(y) = log pi(y | x) - log pi_ref(y | x),

whose optimum is the policy of the combined reward w . r~ (MODPO's Eq. 8 with the margin rewards given). With the
method's weights per prompt it is MODPO under a fixed vector (`morlhf`) or Pro-MODPO under the orchestrator's w(x)
(`pro-morlhf`): the weights act in full, scale (1 / w_k) and margin alike, not only through the pair labels.

The pairs: as ranked-dpo's, N candidates per prompt sampled once from the start (the same cache), here labelled
by objective k's normalised reward alone (best vs worst); k is `--modpo_objective`, or each prompt's
largest-weight objective. Weights are renormalised over the objectives that apply to every candidate of the prompt
(rewards/scores.py); a prompt to which k does not apply gives no pair. OUTPUT_DIR/ranked_pairs.jsonl records each
pair with its objective, w_k and margin.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from preforch.alignment.ranked_dpo import (RankedDpo, candidate_rewards, pair_dataset, pair_records, rank_pairs,
                                           starting_candidates)
from preforch.errors import ConfigError
from preforch.rewards.scores import Scores, applicable_weights

OWN_WEIGHT, MARGIN = "modpo_weight", "modpo_margin"  # the pair columns the trainer reads


def modpo_losses(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, own_weight: torch.Tensor,
                 margin: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair MODPO loss -log sigmoid(z) and z = (beta * (h_w - h_l) - margin) / w_k; all inputs [N] (h: summed
    reply log-ratio to the reference, w_k: the weight of the pair's own objective, margin: sum_{j != k} w_j
    (r~_j(y_w) - r~_j(y_l))) -> ([N], [N]). With w_k = 1 and margin 0 it is DPO (Rafailov et al. 2023, Eq. 7)."""
    z = (beta * (chosen_logratios - rejected_logratios) - margin) / own_weight
    return -F.logsigmoid(z), z


def modpo_pairs(scores: Scores, weights: torch.Tensor, objective: Optional[int], names: Sequence[str]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MODPO's labels over N candidates per prompt: scores [P, N, K] (normalised, with applies), weights [P, K] ->
    (ranking [P, N]: objective k's reward, NaN where k does not apply to the prompt, so `rank_pairs` keeps no pair;
    k [P]; w_k [P]; margin [P] of `rank_pairs(ranking)`'s chosen over rejected). An objective applies to a prompt
    when it applies to all its candidates; weights are renormalised over those. k: `objective`, else each prompt's
    largest applicable weight. A named objective with weight 0 where it applies is refused (`names`: the K objectives'
    names, for the message): MODPO divides by its weight."""
    applies = scores.applies.all(1)  # [P, K]
    w = applicable_weights(weights, applies, "modpo")
    k = w.argmax(-1) if objective is None else torch.full((len(w),), objective)
    own = w.gather(1, k[:, None])[:, 0]
    own_applies = applies.gather(1, k[:, None])[:, 0]
    if objective is not None and bool((own_applies & (own == 0)).any()):
        raise ConfigError(f"modpo: objective {names[objective]!r} has weight 0 on "
                          f"{int((own_applies & (own == 0)).sum())} of {len(w)} prompts, and MODPO divides by the "
                          "weight of the pair's own objective: name another --modpo_objective or give it weight")
    values = scores.values.nan_to_num(0.0)
    ranking = torch.where(own_applies[:, None], values.gather(2, k[:, None, None].expand(-1, values.shape[1], 1))[..., 0],
                          torch.nan)
    chosen, rejected, _ = rank_pairs(ranking)
    rows = torch.arange(len(w))
    others = w.scatter(1, k[:, None], 0.0)  # w_j for j != k (0 where j does not apply)
    margin = (others * (values[rows, chosen] - values[rows, rejected])).sum(-1)
    return ranking, k, own, margin


def modpo_dataset(cfg, policy: str, setup, objectives: Sequence[str]):
    """The pairs (with their w_k and margin columns) of `policy`'s cached candidates for the method's prompts."""
    if setup.objective_rewards is None:
        raise ConfigError(f"--algorithm modpo: method {cfg.method!r} rewards through one function, with no "
                          "per-objective rewards to take a margin from")
    objective = None
    if cfg.modpo_objective is not None:
        if cfg.modpo_objective not in objectives:
            raise ConfigError(f"modpo_objective: {cfg.modpo_objective!r} is not an objective of the ensemble "
                              f"({', '.join(objectives)})")
        objective = list(objectives).index(cfg.modpo_objective)
    candidates = starting_candidates(cfg, policy, list(setup.dataset["prompt"]))
    scores = Scores.from_nan(candidate_rewards(setup.objective_rewards, setup.dataset, candidates))
    ranking, k, own, margin = modpo_pairs(scores, torch.tensor(setup.dataset["weights"]), objective, objectives)
    extra = {"objective": [objectives[i] for i in k.tolist()], OWN_WEIGHT: own.tolist(), MARGIN: margin.tolist()}
    return pair_dataset(cfg, pair_records(setup.dataset, candidates, ranking, extra), "modpo", (OWN_WEIGHT, MARGIN))


def with_pair_columns(collator, columns: Sequence[str]):
    """TRL's preference collator plus float tensors [B] of the examples' `columns` (it keeps only its own)."""
    def collate(examples):
        batch = collator(examples)
        batch.update({c: torch.tensor([e[c] for e in examples], dtype=torch.float32) for c in columns})
        return batch

    return collate


def _modpo_trainer_class():
    """ModpoTrainer, built when used so that importing this module does not import TRL."""
    from trl import DPOTrainer

    class ModpoTrainer(DPOTrainer):
        """TRL's DPOTrainer with MODPO's loss (`modpo_losses`): each pair's w_k and margin ride along as dataset
        columns. The loss is TRL's one function with the logging, so it is replaced whole; the reference's
        log-probs are still TRL's (`compute_ref_log_probs`: the adapter off, a frozen copy, or precomputed)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.data_collator = with_pair_columns(self.data_collator, (OWN_WEIGHT, MARGIN))

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            self._signature_columns = list(dict.fromkeys([*self._signature_columns, OWN_WEIGHT, MARGIN]))

        def _compute_loss(self, model, inputs, return_outputs=False):
            if return_outputs:
                raise ValueError("modpo: return_outputs is not supported")
            own, margin = inputs.pop(OWN_WEIGHT), inputs.pop(MARGIN)
            mask = inputs["completion_mask"]
            kwargs = {k: v for k, v in inputs.items()
                      if k not in ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")}
            out = model(**kwargs, use_cache=False, labels=inputs["input_ids"].masked_fill(mask == 0, -100),
                        fused_lm_head=True)
            chosen, rejected = out.log_probs[:, -(mask.shape[1] - 1):].sum(1).chunk(2)
            if self.precompute_ref_logps:
                ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                ref_chosen, ref_rejected = self.compute_ref_log_probs(
                    model if self.ref_model is None else self.ref_model, inputs)
            losses, z = modpo_losses(chosen - ref_chosen, rejected - ref_rejected, own, margin, self.beta)
            mode = "train" if self.model.training else "eval"
            for name, value in (("modpo/z", z), ("modpo/margin", margin), ("modpo/own_weight", own),
                                ("rewards/accuracies", (z > 0).float()),
                                ("rewards/margins", self.beta * ((chosen - ref_chosen) - (rejected - ref_rejected)))):
                self._metrics[mode][name].append(self.accelerator.gather_for_metrics(value.detach()).mean().item())
            return losses.mean()

    return ModpoTrainer


class Modpo(RankedDpo):
    """MODPO / Pro-MODPO (module docstring) on TRL's DPOTrainer; the same DPOConfig fields as ranked-dpo."""

    @classmethod
    def trainer(cls, cfg, model, setup, args, tokenizer, peft_config, callbacks):
        pairs = modpo_dataset(cfg, model, setup, setup.objectives)
        return _modpo_trainer_class()(model=model, args=args, train_dataset=pairs, processing_class=tokenizer,
                                      peft_config=peft_config, callbacks=callbacks)
