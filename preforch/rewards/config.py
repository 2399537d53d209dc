"""Configs of the reward stage: `train-rm` and `build-ensemble`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from preforch.config import (HH_TEST, HH_TRAIN, RunConfig, check_hub, check_one_of, check_positive, check_same_length,
                             check_trackers, hub_options, list_option, option, parse_objective_data, run_config)
from preforch.errors import ConfigError


@run_config
class RewardModelConfig(RunConfig):
    """`preforch train-rm`: Bradley-Terry reward models, one head per objective."""

    base_model: str = option("minilm", "backbone: hub id, local path, or bundled alias 'minilm'")
    objectives: list[str] = list_option(["helpful", "harmless"], "objective names, one per training set")
    train_data: list[str] = list_option(HH_TRAIN, "pairwise data per objective (bundled name[:split] or file)")
    eval_data: list[str] = list_option(HH_TEST, "held-out pairwise data per objective, for accuracy")
    output_dir: str = option("runs/reward_model", "where the trained model is saved")
    multi_head: bool = option(True, "one backbone with K heads (True) or one single-head model per objective")
    pooling: str = option("auto", "how token states become one vector: auto (response where the tokenizer marks the reply, "
                          "else mean) | response (mean over the reply's tokens) | mean | cls | last "
                          "(the last unpadded token)")
    max_length: int = option(128, "tokens per (prompt, response) input")
    prompt_max_tokens: int = option(64, "tokens kept from the end of the dialogue")
    learning_rate: float = option(1e-4, "AdamW learning rate")
    head_learning_rate: Optional[float] = option(None, "the new heads' learning rate (default: learning_rate); the "
                                                 "pretrained encoder keeps learning_rate")
    weight_decay: float = option(0.01, "AdamW weight decay")
    warmup_ratio: float = option(0.1, "linear warm-up fraction, then linear decay")
    epochs: float = option(1.0, "passes over the training pairs")
    batch_size: int = option(16, "pairs per step")
    center_coefficient: float = option(0.1, "weight of the reward-centering term (r_w + r_l)^2")
    disable_dropout: bool = option(True, "train with the encoder's dropout off (TRL's RewardConfig default): the chosen "
                                   "and rejected replies then see the same network, so their margin carries no mask noise")
    max_train_pairs: Optional[int] = option(None, "cap on training pairs per objective")
    max_eval_pairs: Optional[int] = option(None, "cap on held-out pairs per objective")
    holdout_validation: float = option(0.0, "leave out the orchestrator's validation slice of this size (the same hash as "
                                       "train-orchestrator --validation_fraction), so its scores there are out-of-sample")
    cross_fit_folds: int = option(0, "also train k fold models (each without one fold of the pairs) so the orchestrator's "
                                  "targets come from a model that never saw the pair; 0 = off, else >= 2")
    push_to_hub: bool = hub_options()[0]
    hub_model_id: Optional[str] = hub_options()[1]
    trust_remote_code: bool = option(False, "allow custom model code from the hub (off unless you trust it)")
    # MOSLIM: classification heads instead of Bradley-Terry scores.
    levels: list[int] = field(default_factory=list, metadata={"help": (
        "MOSLIM classification heads: intensity levels per objective (e.g. 2 2 5); a 2-level head learns "
        "chosen=1 / rejected=0 from pairs, a head with more levels reads rated pairs (score_chosen/score_rejected, "
        "1-10, binned). Empty: Bradley-Terry heads")})

    def __post_init__(self):
        if self.levels:
            check_same_length(self, "objectives", "levels")
            if min(self.levels) < 2 or not self.multi_head or self.cross_fit_folds:
                raise ConfigError(f"levels: every count must be >= 2, with multi_head and no cross_fit_folds; "
                                  f"got levels {self.levels}")
        check_one_of(self, "pooling", ("auto", "response", "mean", "cls", "last"))
        check_trackers(self)
        check_hub(self)
        if not 0 <= self.holdout_validation < 1:
            raise ConfigError(f"holdout_validation: expected a value in [0, 1), got {self.holdout_validation}")
        if self.cross_fit_folds == 1 or self.cross_fit_folds < 0:
            raise ConfigError(f"cross_fit_folds: expected 0 (off) or at least 2, got {self.cross_fit_folds}")
        check_same_length(self, "objectives", "train_data")
        if self.eval_data:
            check_same_length(self, "objectives", "eval_data")
        check_positive(self, "max_length", "batch_size", "learning_rate", "head_learning_rate", "epochs")


@dataclass
class EnsembleConfig:
    """`preforch build-ensemble`: reward sources + normalisation statistics fitted on a reference set."""

    reward_models: list[str] = list_option(["runs/reward_model"], "reward-model folders or hub ids (objectives from id2label)")
    rules: list[str] = list_option(["conciseness"], "rule objectives: 'name' (built-in) or 'objective=module:function'")
    reference_data: list[str] = list_option(HH_TRAIN, "preference data whose chosen+rejected responses fit the z-scores")
    max_reference_pairs: Optional[int] = option(None, "cap on reference pairs per data spec")
    objective_reference: list[str] = list_option([], "objective=data: fit this objective's z-score on that data's replies "
                                                 "only, e.g. arithmetic=arithmetic-smollm2:train (otherwise each objective "
                                                 "is fitted on the reference replies it applies to)")
    output_dir: str = option("runs/rewards", "where ensemble.json is written")
    trust_remote_code: bool = option(False, "allow custom model code from the hub")

    def __post_init__(self):
        parse_objective_data("objective_reference", self.objective_reference)

    @property
    def objective_references(self) -> dict[str, str]:
        """objective -> data spec of `objective_reference`."""
        return parse_objective_data("objective_reference", self.objective_reference)


def rule_objective(spec: str) -> str:
    """The objective a rule spec scores: `objective=rule`, else the rule's own name (`module:function` -> function)."""
    objective, _, rule = spec.rpartition("=")
    return objective or rule.rpartition(":")[2]
