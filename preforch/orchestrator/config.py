"""Configs of the orchestrator stage: `train-orchestrator`, `eval-orchestrator`, `weights`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from preforch.config import (HH_TEST, HH_TRAIN, RunConfig, check_hub, check_one_of, check_positive, check_trackers,
                             hub_options, list_option, option, run_config)
from preforch.errors import ConfigError

ORCHESTRATOR_OBJECTIVES = ("kl", "bradley-terry", "hybrid")
TARGETS = ("normalized", "raw")


@run_config
class OrchestratorConfig(RunConfig):
    """`preforch train-orchestrator`: the Preference Orchestrator f_phi(x) (paper Eq. 8)."""

    ensemble: str = option("runs/quickstart/rewards", "folder of a saved reward ensemble (objectives + normalisation)")
    encoder: str = option("minilm", "prompt encoder: hub id, local path, bundled alias 'minilm', or 'reward-model' (the "
                          "encoder of the ensemble's reward model, which has learnt what in a dialogue matters to each "
                          "objective)")
    train_data: list[str] = list_option(HH_TRAIN, "preference data whose chosen responses give the targets")
    eval_data: list[str] = list_option(HH_TEST, "held-out preference data for KL and AUROC")
    output_dir: str = option("runs/orchestrator", "where the orchestrator is saved")
    positive_source: Optional[str] = option(None, "source label whose prompts are positives for the AUROC (default: last)")
    tau: float = option(1.0, "temperature of the targets softmax(r~(x, y_w) / tau) (Eq. 7)")
    targets: str = option("normalized", "what the targets' softmax reads: normalized (each objective's z-score, r~) | raw "
                          "(the paper's Eq. 7 over raw reward scores, whose scales differ between reward models)")
    objective: str = option("bradley-terry", "bradley-terry (human labels through the combined reward, as ArmoRM's gate; the "
                            "default: best on validation, docs/design.md) | kl (the paper's Eq. 8: KL to the targets of Eq. 7) | "
                            "hybrid (kl + hybrid_weight * bradley-terry)")
    hybrid_weight: float = option(1.0, "weight of the Bradley-Terry term in the hybrid objective")
    cross_fit: bool = option(False, "score each training pair with reward models that never trained on it "
                             "(needs train-rm --cross_fit_folds k)")
    validation_fraction: float = option(0.1, "share of training pairs held out to calibrate the temperature and pick the "
                                        "best fixed weights (0 = none)")
    calibrate_temperature: bool = option(True, "fit softmax(logits / T) on the validation pairs (Bradley-Terry likelihood "
                                         "of the human labels); predict applies T everywhere")
    pooling: str = option("mean", "how token states become one vector: mean | cls")
    max_length: int = option(64, "prompt tokens (the end of the dialogue is kept)")
    train_encoder: bool = option(False, "fine-tune the encoder too (slower); default trains the head on cached features")
    learning_rate: float = option(3e-3, "head learning rate")
    encoder_learning_rate: float = option(1e-5, "encoder learning rate when --train_encoder (paper: 1e-5)")
    weight_decay: float = option(1.0, "AdamW weight decay of the head (strong: targets are noisy)")
    epochs: Optional[int] = option(None, "passes over the prompts; default 100 with a frozen encoder, 3 when fine-tuning")
    batch_size: int = option(32, "prompts per step (paper: 32)")
    max_train_pairs: Optional[int] = option(None, "cap on training pairs per data spec")
    max_eval_pairs: Optional[int] = option(None, "cap on held-out pairs per data spec")
    push_to_hub: bool = hub_options()[0]
    hub_model_id: Optional[str] = hub_options()[1]

    def __post_init__(self):
        check_positive(self, "tau", "max_length", "batch_size", "learning_rate")
        check_trackers(self)
        check_hub(self)
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling: expected 'mean' or 'cls', got {self.pooling!r}")
        check_one_of(self, "objective", ORCHESTRATOR_OBJECTIVES)
        check_one_of(self, "targets", TARGETS)
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction: expected a value in [0, 1), got {self.validation_fraction}")
        if self.calibrate_temperature and self.validation_fraction == 0:
            raise ConfigError("calibrate_temperature needs validation pairs: set validation_fraction > 0")

    @property
    def num_epochs(self) -> int:
        return self.epochs if self.epochs is not None else (3 if self.train_encoder else 100)


@dataclass
class WeightsConfig:
    """`preforch weights "<prompt>"`: the orchestrator's weight for each objective."""

    prompt: list[str] = list_option([], "prompt text(s)")
    orchestrator: str = option("runs/quickstart/orchestrator", "orchestrator folder")
    json: bool = option(False, "print JSON instead of a table")


@dataclass
class EvalOrchestratorConfig:
    """`preforch eval-orchestrator`: held-out KL vs baselines and prompt-source AUROC."""

    orchestrator: str = option("runs/quickstart/orchestrator", "orchestrator folder")
    ensemble: str = option("runs/quickstart/rewards", "reward ensemble folder (gives the targets)")
    eval_data: list[str] = list_option(HH_TEST, "held-out preference data")
    max_eval_pairs: Optional[int] = option(None, "cap on pairs per data spec")
    positive_source: Optional[str] = option(None, "source label whose prompts are positives for the AUROC (default: last)")
    output: Optional[str] = option(None, "also write the metrics as JSON here")
    dump_weights: Optional[str] = option(None, "write per-prompt predicted and target weights (JSONL) here")
