"""One config schema for Python, CLI flags and YAML recipes.

Each command has a dataclass; `preforch.cli` turns its fields into `--flags` with HfArgumentParser and
`--config recipe.yaml` sets defaults that flags then override (TRL's TrlParser pattern).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from preforch.errors import ConfigError

HH_TRAIN = ["hh-helpful:train", "hh-harmless:train"]
HH_TEST = ["hh-helpful:test", "hh-harmless:test"]
POLICY_METHODS = ("pro-morlhf", "morlhf", "single-reward", "moslim")
ORCHESTRATOR_OBJECTIVES = ("kl", "bradley-terry", "hybrid")
ONLINE_FILTERS = ("ric", "offline-thresholds")


def _trl(trainer: str):
    return field(default_factory=dict, metadata={"help": (
        f"any field of TRL's {trainer} config, passed straight to it (refused by name if TRL has no such field): "
        "a `trl:` mapping in a recipe, or --trl.FIELD VALUE on the command line (e.g. --trl.gradient_accumulation_steps 4)")})


TRACKERS = ("none", "tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "clearml", "dvclive", "aim", "swanlab")


def _check_trackers(cfg) -> None:
    """report_to: 'none' or comma-separated trackers accelerate knows, each checked by name."""
    unknown = [t for t in cfg.report_to.split(",") if t not in TRACKERS]
    if unknown:
        raise ConfigError(f"report_to: unknown tracker(s) {unknown}; expected none or any of {', '.join(TRACKERS[1:])}")


def _check_hub(cfg) -> None:
    if cfg.push_to_hub and not cfg.hub_model_id:
        raise ConfigError("push_to_hub: needs hub_model_id (e.g. your-name/preforch-reward-model)")


def _report_to():
    return field(default="none", metadata={"help": "experiment trackers (accelerate's): none | tensorboard | wandb | "
                                                   "trackio | ..., several comma-separated; local ones write to <output_dir>_logs "
                                                   "(train-mahalo: OUTPUT_DIR/training)"})


def _hub():
    return (field(default=False, metadata={"help": "upload the trained folder (weights, config.json, model card) to the "
                                                    "Hugging Face Hub as --hub_model_id"}),
            field(default=None, metadata={"help": "Hub repo for --push_to_hub, e.g. your-name/preforch-reward-model"}))


def _list(default: list[str], help: str):
    return field(default_factory=lambda: list(default), metadata={"help": help})


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class RewardModelConfig:
    """`preforch train-rm`: Bradley-Terry reward models, one head per objective."""

    base_model: str = _f("minilm", "backbone: hub id, local path, or bundled alias 'minilm'")
    objectives: list[str] = _list(["helpful", "harmless"], "objective names, one per training set")
    train_data: list[str] = _list(HH_TRAIN, "pairwise data per objective (bundled name[:split] or file)")
    eval_data: list[str] = _list(HH_TEST, "held-out pairwise data per objective, for accuracy")
    output_dir: str = _f("runs/reward_model", "where the trained model is saved")
    multi_head: bool = _f(True, "one backbone with K heads (True) or one single-head model per objective")
    pooling: str = _f("auto", "how token states become one vector: auto (response where the tokenizer marks the reply, "
                      "else mean) | response (mean over the reply's tokens) | mean | cls | last "
                      "(the last unpadded token)")
    max_length: int = _f(128, "tokens per (prompt, response) input")
    prompt_max_tokens: int = _f(64, "tokens kept from the end of the dialogue")
    learning_rate: float = _f(1e-4, "AdamW learning rate")
    head_learning_rate: Optional[float] = _f(None, "the new heads' learning rate (default: learning_rate); the "
                                             "pretrained encoder keeps learning_rate")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    warmup_ratio: float = _f(0.1, "linear warm-up fraction, then linear decay")
    epochs: float = _f(1.0, "passes over the training pairs")
    batch_size: int = _f(16, "pairs per step")
    center_coefficient: float = _f(0.1, "weight of the reward-centering term (r_w + r_l)^2")
    disable_dropout: bool = _f(True, "train with the encoder's dropout off (TRL's RewardConfig default): the chosen "
                               "and rejected replies then see the same network, so their margin carries no mask noise")
    max_train_pairs: Optional[int] = _f(None, "cap on training pairs per objective")
    max_eval_pairs: Optional[int] = _f(None, "cap on held-out pairs per objective")
    holdout_validation: float = _f(0.0, "leave out the orchestrator's validation slice of this size (the same hash as "
                                   "train-orchestrator --validation_fraction), so its scores there are out-of-sample")
    cross_fit_folds: int = _f(0, "also train k fold models (each without one fold of the pairs) so the orchestrator's "
                              "targets come from a model that never saw the pair; 0 = off, else >= 2")
    seed: int = _f(0, "random seed")
    report_to: str = _report_to()
    push_to_hub: bool = _hub()[0]
    hub_model_id: Optional[str] = _hub()[1]
    trust_remote_code: bool = _f(False, "allow custom model code from the hub (off unless you trust it)")
    # MOSLIM (issue 14): classification heads instead of Bradley-Terry scores.
    levels: list[int] = field(default_factory=list, metadata={"help": (
        "MOSLIM classification heads: intensity levels per objective (e.g. 2 2 5); a 2-level head learns "
        "chosen=1 / rejected=0 from pairs, a head with more levels reads rated pairs (score_chosen/score_rejected, "
        "1-10, binned). Empty: Bradley-Terry heads")})

    def __post_init__(self):
        if self.levels:
            _same_length(self, "objectives", "levels")
            if min(self.levels) < 2 or not self.multi_head or self.cross_fit_folds:
                raise ConfigError(f"levels: every count must be >= 2, with multi_head and no cross_fit_folds; "
                                  f"got levels {self.levels}")
        _one_of(self, "pooling", ("auto", "response", "mean", "cls", "last"))
        _check_trackers(self)
        _check_hub(self)
        if not 0 <= self.holdout_validation < 1:
            raise ConfigError(f"holdout_validation: expected a value in [0, 1), got {self.holdout_validation}")
        if self.cross_fit_folds == 1 or self.cross_fit_folds < 0:
            raise ConfigError(f"cross_fit_folds: expected 0 (off) or at least 2, got {self.cross_fit_folds}")
        _same_length(self, "objectives", "train_data")
        if self.eval_data:
            _same_length(self, "objectives", "eval_data")
        _positive(self, "max_length", "batch_size", "learning_rate", "head_learning_rate", "epochs")


@dataclass
class EnsembleConfig:
    """`preforch build-ensemble`: reward sources + normalisation statistics fitted on a reference set."""

    reward_models: list[str] = _list(["runs/reward_model"], "reward-model folders or hub ids (objectives from id2label)")
    rules: list[str] = _list(["conciseness"], "rule objectives: 'name' (built-in) or 'objective=module:function'")
    reference_data: list[str] = _list(HH_TRAIN, "preference data whose chosen+rejected responses fit the z-scores")
    max_reference_pairs: Optional[int] = _f(None, "cap on reference pairs per data spec")
    objective_reference: list[str] = _list([], "objective=data: fit this objective's z-score on that data's replies "
                                           "only, e.g. arithmetic=arithmetic-smollm2:train (a rule that scores 0 "
                                           "on prompts it does not judge would otherwise take its scale from them)")
    output_dir: str = _f("runs/rewards", "where ensemble.json is written")
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        _objective_data("objective_reference", self.objective_reference)

    @property
    def objective_references(self) -> dict[str, str]:
        """objective -> data spec of `objective_reference`."""
        return _objective_data("objective_reference", self.objective_reference)


@dataclass
class OrchestratorConfig:
    """`preforch train-orchestrator`: the Preference Orchestrator f_phi(x) (paper Eq. 8)."""

    ensemble: str = _f("runs/quickstart/rewards", "folder of a saved reward ensemble (objectives + normalisation)")
    encoder: str = _f("minilm", "prompt encoder: hub id, local path, bundled alias 'minilm', or 'reward-model' (the "
                      "encoder of the ensemble's reward model, which has learnt what in a dialogue matters to each "
                      "objective)")
    train_data: list[str] = _list(HH_TRAIN, "preference data whose chosen responses give the targets")
    eval_data: list[str] = _list(HH_TEST, "held-out preference data for KL and AUROC")
    output_dir: str = _f("runs/orchestrator", "where the orchestrator is saved")
    positive_source: Optional[str] = _f(None, "source label whose prompts are positives for the AUROC (default: last)")
    tau: float = _f(1.0, "temperature of the targets softmax(r~(x, y_w) / tau) (Eq. 7)")
    objective: str = _f("bradley-terry", "bradley-terry (human labels through the combined reward, as ArmoRM's gate; the "
                        "default: best on validation, docs/design.md) | kl (the paper's Eq. 8: KL to the targets of Eq. 7) | "
                        "hybrid (kl + hybrid_weight * bradley-terry)")
    hybrid_weight: float = _f(1.0, "weight of the Bradley-Terry term in the hybrid objective")
    cross_fit: bool = _f(False, "score each training pair with reward models that never trained on it "
                         "(needs train-rm --cross_fit_folds k)")
    validation_fraction: float = _f(0.1, "share of training pairs held out to calibrate the temperature and pick the "
                                    "best fixed weights (0 = none)")
    calibrate_temperature: bool = _f(True, "fit softmax(logits / T) on the validation pairs (Bradley-Terry likelihood "
                                     "of the human labels); predict applies T everywhere")
    pooling: str = _f("mean", "how token states become one vector: mean | cls")
    max_length: int = _f(64, "prompt tokens (the end of the dialogue is kept)")
    train_encoder: bool = _f(False, "fine-tune the encoder too (slower); default trains the head on cached features")
    learning_rate: float = _f(3e-3, "head learning rate")
    encoder_learning_rate: float = _f(1e-5, "encoder learning rate when --train_encoder (paper: 1e-5)")
    weight_decay: float = _f(1.0, "AdamW weight decay of the head (strong: targets are noisy)")
    epochs: Optional[int] = _f(None, "passes over the prompts; default 100 with a frozen encoder, 3 when fine-tuning")
    batch_size: int = _f(32, "prompts per step (paper: 32)")
    max_train_pairs: Optional[int] = _f(None, "cap on training pairs per data spec")
    max_eval_pairs: Optional[int] = _f(None, "cap on held-out pairs per data spec")
    seed: int = _f(0, "random seed")
    report_to: str = _report_to()
    push_to_hub: bool = _hub()[0]
    hub_model_id: Optional[str] = _hub()[1]
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        _positive(self, "tau", "max_length", "batch_size", "learning_rate")
        _check_trackers(self)
        _check_hub(self)
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling: expected 'mean' or 'cls', got {self.pooling!r}")
        _one_of(self, "objective", ORCHESTRATOR_OBJECTIVES)
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction: expected a value in [0, 1), got {self.validation_fraction}")
        if self.calibrate_temperature and self.validation_fraction == 0:
            raise ConfigError("calibrate_temperature needs validation pairs: set validation_fraction > 0")

    @property
    def num_epochs(self) -> int:
        return self.epochs if self.epochs is not None else (3 if self.train_encoder else 100)


MIXED_INTENT_TRAIN = [*HH_TRAIN, "arithmetic-smollm2:train"]
MIXED_INTENT_TEST = [*HH_TEST, "arithmetic-smollm2:test"]


@dataclass
class BenchmarkConfig:
    """`preforch build-benchmark`: the reward stack of a comparison in one folder. Reward models on the training
    pairs plus rules form the ensemble; an independent judge (reward models trained on the held-out pairs, the same
    rules) scores policies and trains nothing; the orchestrator learns from every source's pairs without being told
    the source. Default: the mixed-intent benchmark (harmful requests, benign requests, arithmetic problems)."""

    output_dir: str = _f("runs/mixed_intent", "reward_model/, rewards/, judge/, orchestrator/, benchmark.json, report.md")
    reward_base_model: str = _f("minilm", "backbone of the reward models (training and judge)")
    objectives: list[str] = _list(["helpful", "harmless"], "learned objectives, one reward-model head each")
    rm_train_data: list[str] = _list(HH_TRAIN, "pairs per learned objective for the training reward models")
    judge_train_data: list[str] = _list(HH_TEST, "pairs per learned objective for the judge's reward models (held out "
                                        "from every policy and from the orchestrator)")
    judge_eval_data: list[str] = _list(HH_TRAIN, "pairs per learned objective on which the judge's accuracy is read")
    rules: list[str] = _list(["arithmetic=exact_match"], "rule objectives of both ensembles (a rule is its own judge)")
    train_data: list[str] = _list(MIXED_INTENT_TRAIN, "the orchestrator's training pairs, every source (also the "
                                  "ensemble's reference set)")
    eval_data: list[str] = _list(MIXED_INTENT_TEST, "held-out pairs: the orchestrator's evaluation, the judge's reference set")
    objective_reference: list[str] = _list(["arithmetic=arithmetic-smollm2:train"], "objective=data: that objective's "
                                           "z-score fitted on that data only (see build-ensemble)")
    judge_objective_reference: list[str] = _list(["arithmetic=arithmetic-smollm2:test"], "the same for the judge")
    encoder: str = _f("reward-model", "orchestrator encoder (see train-orchestrator --encoder)")
    orchestrator_objective: str = _f("bradley-terry", "see train-orchestrator --objective")
    positive_source: str = _f("hh-harmless", "source whose prompts are the AUROC's positives")
    rm_epochs: float = _f(1.0, "training reward models' epochs")
    judge_epochs: float = _f(3.0, "judge reward models' epochs (fewer pairs)")
    max_judge_eval_pairs: Optional[int] = _f(500, "cap on judge_eval_data pairs per objective")
    max_train_pairs: Optional[int] = _f(None, "cap on training pairs per data spec (a fast smoke run)")
    max_eval_pairs: Optional[int] = _f(None, "cap on held-out pairs per data spec (a fast smoke run)")
    seed: int = _f(0, "random seed")
    overwrite: bool = _f(False, "rebuild stages whose outputs exist (default: reuse them)")

    def __post_init__(self):
        _same_length(self, "objectives", "rm_train_data")
        _same_length(self, "objectives", "judge_train_data")
        _same_length(self, "objectives", "judge_eval_data")
        _one_of(self, "orchestrator_objective", ORCHESTRATOR_OBJECTIVES)
        _positive(self, "rm_epochs", "judge_epochs", "max_judge_eval_pairs", "max_train_pairs", "max_eval_pairs")
        known = [*self.objectives, *(rule_objective(r) for r in self.rules)]
        for name in ("objective_reference", "judge_objective_reference"):
            unknown = sorted(set(_objective_data(name, getattr(self, name))) - set(known))
            if unknown:
                raise ConfigError(f"{name}: objective(s) {unknown} not among the ensemble's {known}")


@dataclass
class WeightsConfig:
    """`preforch weights "<prompt>"`: the orchestrator's weight for each objective."""

    prompt: list[str] = _list([], "prompt text(s)")
    orchestrator: str = _f("runs/quickstart/orchestrator", "orchestrator folder")
    json: bool = _f(False, "print JSON instead of a table")


@dataclass
class EvalOrchestratorConfig:
    """`preforch eval-orchestrator`: held-out KL vs baselines and prompt-source AUROC."""

    orchestrator: str = _f("runs/quickstart/orchestrator", "orchestrator folder")
    ensemble: str = _f("runs/quickstart/rewards", "reward ensemble folder (gives the targets)")
    eval_data: list[str] = _list(HH_TEST, "held-out preference data")
    max_eval_pairs: Optional[int] = _f(None, "cap on pairs per data spec")
    positive_source: Optional[str] = _f(None, "source label whose prompts are positives for the AUROC (default: last)")
    output: Optional[str] = _f(None, "also write the metrics as JSON here")
    dump_weights: Optional[str] = _f(None, "write per-prompt predicted and target weights (JSONL) here")


DEFAULT_KIND = "best-of-n"  # how generate and evaluate serve a bare model folder
METHOD_HELP = ("how the policy serves a preference, any kind in preforch/serving/kinds.py: best-of-n (rerank N samples "
               "with --ensemble) | plain (ignores it) | wic (a train-wic policy reads it from its prompt) | soups (a "
               "train-experts folder: experts merged in weight space by w) | mod (a train-experts folder: experts' "
               "next-token log-probs mixed by w); default: the folder's own (its preference_policy.json; wic for a "
               "train-wic folder, soups for a train-experts folder), else best-of-n")
POLICY_HELP = "policy folder (see --method), causal LM hub id or local path, or bundled alias 'smollm2'"


@dataclass
class GenerateConfig:
    """`preforch generate`: answers under orchestrator or user weights, by default best-of-N reranked by
    sum_i w_i(x) r~_i(x, y)."""

    prompt: list[str] = _list([], "prompt(s) to answer; or use --prompts_file")
    prompts_file: Optional[str] = _f(None, "JSONL/CSV/JSON preference file or .txt (one prompt per line)")
    policy: str = _f("smollm2", POLICY_HELP)
    method: Optional[str] = _f(None, METHOD_HELP)
    ensemble: str = _f("runs/quickstart/rewards", "reward ensemble folder")
    orchestrator: Optional[str] = _f("runs/quickstart/orchestrator", "orchestrator folder (weights per prompt)")
    weights: Optional[str] = _f(None, "fixed weights, e.g. helpful=0.7,harmless=0.3 (overrides the orchestrator); "
                                "end with auto to let the orchestrator fill the objectives not named: harmless=0.5,auto")
    num_candidates: Optional[int] = _f(None, "N in best-of-N (default: the policy folder's, else 4)")
    max_new_tokens: int = _f(64, "tokens per candidate")
    temperature: float = _f(0.8, "sampling temperature")
    top_p: float = _f(0.95, "nucleus sampling")
    batch_size: int = _f(8, "prompts per generation batch")
    seed: int = _f(0, "random seed")
    output: Optional[str] = _f(None, "write results as JSONL here")
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        _positive(self, "num_candidates", "max_new_tokens", "batch_size")
        _check_kind("method", self.method)


@dataclass
class ServeConfig:
    """`preforch serve`: a preference policy behind an OpenAI-compatible HTTP endpoint (issue 15)."""

    policy: str = _f("smollm2", POLICY_HELP)
    method: Optional[str] = _f(None, METHOD_HELP)
    ensemble: Optional[str] = _f("runs/quickstart/rewards", "reward ensemble folder: reranks (best-of-n) and scores "
                                 "each reply; '' for none")
    orchestrator: Optional[str] = _f("runs/quickstart/orchestrator", "orchestrator folder: weights when a request "
                                     "gives no preference (or a partial one); '' for none")
    host: str = _f("127.0.0.1", "interface to listen on (0.0.0.0: every interface)")
    port: int = _f(8000, "TCP port")
    model_name: str = _f("preforch", "model id that /v1/models lists")
    num_candidates: Optional[int] = _f(None, "N in best-of-N (default: the policy folder's, else 4)")
    max_batch: int = _f(8, "requests answered by one generation call at most")
    queue_size: int = _f(64, "requests that may wait; beyond, 503 with Retry-After")
    max_prompt_chars: int = _f(8000, "longest prompt (characters over all messages); beyond, 413")
    max_tokens: int = _f(512, "most new tokens a request may ask (also the default); beyond, 400")
    max_n: int = _f(8, "most replies (n) a request may ask; beyond, 400")
    max_score_items: int = _f(256, "most (messages, reply) items one /v1/score request may send; beyond, 400")
    weights: Optional[str] = _f(None, "default preference for requests that give none, e.g. helpful=0.7,harmless=0.3 "
                                "or harmless=0.6,auto (the orchestrator fills the rest); default: the orchestrator's")
    api_key: Optional[str] = _f(None, "require 'Authorization: Bearer KEY' on every /v1 route (401 otherwise); also "
                                "read from $PREFORCH_API_KEY")
    backend: str = _f("hf", "what samples candidates: hf (transformers generate) | vllm (needs vllm and a GPU; the plain, "
                      "best-of-n, wic and moslim kinds)")
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        _positive(self, "port", "num_candidates", "max_batch", "queue_size", "max_prompt_chars", "max_tokens", "max_n",
                  "max_score_items")
        _one_of(self, "backend", ("hf", "vllm"))
        _check_kind("method", self.method)


@dataclass
class QuickstartConfig:
    """`preforch quickstart`: the whole PRO idea on the bundled defaults, on a CPU, in minutes."""

    output_dir: str = _f("runs/quickstart", "run folder (report.md, metrics.json, plots, models)")
    policy: str = _f("smollm2", "causal LM for best-of-N")
    reward_base_model: str = _f("minilm", "backbone of the multi-head reward model")
    encoder: str = _f("reward-model", "orchestrator encoder: 'reward-model' (the reward model's own, trained in stage 2), "
                      "a hub id, local path or 'minilm'")
    rules: list[str] = _list(["conciseness"], "rule-based objectives added to helpful and harmless")
    rm_epochs: float = _f(1.0, "reward-model epochs")
    rm_learning_rate: float = _f(1e-4, "reward-model learning rate")
    center_coefficient: float = _f(0.1, "reward-centering weight (pins the prompt offset BT leaves free)")
    max_train_pairs: Optional[int] = _f(None, "cap on training pairs per source (for a faster smoke run)")
    max_eval_pairs: Optional[int] = _f(None, "cap on held-out pairs per source")
    tau: float = _f(1.0, "target temperature (Eq. 7)")
    orchestrator_objective: str = _f("bradley-terry", "objective of the orchestrator the run serves (see train-orchestrator "
                                     "--objective; chosen by validation accuracy, docs/design.md)")
    side_objectives: list[str] = _list(["kl"], "other orchestrator objectives trained on the same scores and reported "
                                       "beside it (kl = the paper's Eq. 8)")
    bon_prompts_per_source: int = _f(16, "held-out prompts per source for the best-of-N comparison")
    num_candidates: int = _f(4, "N in best-of-N")
    max_new_tokens: int = _f(48, "tokens per candidate")
    seed: int = _f(0, "random seed")
    overwrite: bool = _f(False, "retrain stages whose outputs already exist (default: reuse them, i.e. resume)")

    def __post_init__(self):
        _positive(self, "rm_epochs", "tau", "num_candidates", "max_new_tokens", "bon_prompts_per_source")
        _one_of(self, "orchestrator_objective", ORCHESTRATOR_OBJECTIVES)
        for objective in self.side_objectives:
            if objective not in ORCHESTRATOR_OBJECTIVES or objective == self.orchestrator_objective:
                raise ConfigError(f"side_objectives: expected objectives from {ORCHESTRATOR_OBJECTIVES} other than "
                                  f"orchestrator_objective {self.orchestrator_objective!r}, got {objective!r}")


@dataclass
class EvaluateConfig:
    """`preforch evaluate`: a policy under a preference grid, scored by a (judge) reward ensemble."""

    from_run: Optional[str] = _f(None, "a quickstart run folder: take policy, ensemble, orchestrator, prompts and sampling from it")
    policy: str = _f("smollm2", POLICY_HELP)
    method: Optional[str] = _f(None, METHOD_HELP)
    ensemble: str = _f("runs/quickstart/rewards", "the method's own reward ensemble (reranking, oracle weights w*)")
    judge: Optional[str] = _f(None, "reward ensemble that scores the picks (default: --ensemble); may be held-out models")
    orchestrator: Optional[str] = _f(None, "also evaluate the orchestrator's per-prompt weights")
    weights: Optional[str] = _f(None, "also evaluate this preference as a row labelled by it, e.g. helpful=0.7,harmless=0.3, "
                                "or partial: harmless=0.5,auto (the orchestrator fills the rest per prompt)")
    eval_data: list[str] = _list(HH_TEST, "held-out preference data (prompts; chosen replies give w* for the gap)")
    prompts_per_source: int = _f(16, "random prompts drawn from each eval_data spec")
    exclude_data: list[str] = _list([], "data specs whose prompts never enter the held-out sample (e.g. the training "
                                    "prompts of the policy judged); with it, each prompt is drawn once")
    grid_divisions: int = _f(10, "simplex lattice resolution d (K=2, d=10: 11 preferences)")
    grid: list[str] = _list([], "explicit preferences instead of the lattice, each 'w1,w2,...'")
    reference_point: Optional[list[float]] = _f(None, "hypervolume reference point, one value per objective (required)")
    num_candidates: Optional[int] = _f(None, "N in best-of-N (default: the policy folder's, else 4)")
    max_new_tokens: int = _f(48, "tokens per sample")
    temperature: float = _f(0.8, "sampling temperature; 0 decodes greedily (not for best-of-n)")
    top_p: float = _f(0.95, "nucleus sampling")
    batch_size: int = _f(8, "prompts per generation batch")
    tau: float = _f(1.0, "temperature of the oracle weights w* (the orchestrator's own tau when given)")
    seed: int = _f(0, "seed for prompt sampling, generation and random weights")
    output_dir: str = _f("runs/eval", "evaluation.json, report.md, front.png")
    generation_cache: Optional[str] = _f(None, "folder of cached generations (default: OUTPUT_DIR/generations)")
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        _positive(self, "prompts_per_source", "grid_divisions", "num_candidates", "max_new_tokens", "batch_size", "tau")
        _check_kind("method", self.method)
        _non_negative(self, "temperature")


@dataclass
class PolicyConfig:
    """`preforch train-policy`: Pro-MORLHF / MORLHF / single-reward RL through TRL (paper Eq. 9)."""

    method: str = _f("pro-morlhf", "pro-morlhf (orchestrator weights per prompt) | morlhf (one fixed vector) | single-reward "
                     "| moslim (random levels tags, the classifier's mapped reward)")
    algorithm: str = _f("grpo", "grpo (TRL GRPOTrainer) | rloo (TRL RLOOTrainer)")
    policy: str = _f("smollm2", "causal LM to train: hub id, local path, or bundled alias 'smollm2'")
    ensemble: str = _f("runs/quickstart/rewards", "reward ensemble folder (objectives + stored normalisation)")
    orchestrator: Optional[str] = _f("runs/quickstart/orchestrator", "orchestrator folder (pro-morlhf)")
    weights: Optional[str] = _f(None, "morlhf: fixed weights, e.g. helpful=0.5,harmless=0.5 (default uniform); "
                                "harmless=0.5,auto: the orchestrator fills the rest per prompt")
    objective: Optional[str] = _f(None, "single-reward: the one objective to optimise")
    # MOSLIM (issue 14)
    classifier: Optional[str] = _f(None, "moslim: classification reward model folder (train-rm --levels ...)")
    mapping: str = _f("probability", "moslim: class probabilities -> reward: probability (Eq. 11, z-scored probability of "
                      "the requested level) | expected (z-scored expected level, signed toward the request) | distance")
    train_data: list[str] = _list(HH_TRAIN, "preference data whose prompts are the RL prompts")
    max_prompts: Optional[int] = _f(None, "cap on prompts per data spec")
    max_prompt_tokens: int = _f(256, "keep each RL prompt within this many tokens of the policy's chat template, "
                                "dropping the oldest turns first (GRPO pads a batch to its longest prompt; HH "
                                "dialogues reach ~1,000 tokens); 0: whole prompts")
    output_dir: str = _f("runs/policy", "checkpoints, log.jsonl and the final policy in OUTPUT_DIR/policy")
    max_steps: int = _f(50, "optimisation steps")
    learning_rate: float = _f(5e-6, "AdamW learning rate")
    per_device_train_batch_size: int = _f(8, "completions per device per step (a multiple of num_generations)")
    num_generations: int = _f(4, "completions per prompt (the group for GRPO / RLOO baselines)")
    max_completion_length: int = _f(48, "tokens per completion")
    temperature: float = _f(1.0, "sampling temperature during training")
    beta: float = _f(0.04, "KL penalty to the reference policy")
    use_lora: bool = _f(False, "train LoRA adapters (peft) instead of all weights; merged into the saved policy")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    use_vllm: bool = _f(False, "generate with vLLM (needs vllm installed and a GPU)")
    pad_to_multiple_of: Optional[int] = _f(None, "round padded prompt and completion lengths up to a multiple of this; "
                                           "default 16 on CPU with bf16 (bounds oneDNN's per-shape kernel memory in long "
                                           "runs), TRL's default elsewhere")
    logging_steps: int = _f(1, "log every N steps (console, log.jsonl, report_to)")
    save_steps: int = _f(25, "checkpoint every N steps")
    resume: bool = _f(False, "continue from the newest checkpoint in output_dir")
    report_to: str = _f("none", "extra loggers for TRL: none | tensorboard | wandb ...")
    trl: dict = _trl("GRPOConfig / RLOOConfig (by --algorithm)")
    seed: int = _f(0, "random seed")
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        _positive(self, "max_steps", "learning_rate", "per_device_train_batch_size", "num_generations", "max_completion_length")
        _non_negative(self, "max_prompt_tokens")
        _check_policy_method("method", self.method)
        _one_of(self, "mapping", ("probability", "expected", "distance"))
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ConfigError(f"pad_to_multiple_of: expected a positive number of tokens, got {self.pad_to_multiple_of}")
        if self.algorithm not in ("grpo", "rloo"):
            raise ConfigError(f"algorithm: expected grpo or rloo, got {self.algorithm!r} (TRL >= 1.13 has no PPO)")
        if self.per_device_train_batch_size % self.num_generations:
            raise ConfigError(f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be a multiple "
                              f"of num_generations ({self.num_generations})")


EXPERT_METHODS = ("dpo", "grpo")


@dataclass
class ExpertsConfig:
    """`preforch train-experts`: one LoRA expert per objective on one base model, for the soups and mod kinds."""

    base_model: str = _f("smollm2", "causal LM every expert adapts: hub id, local path, or bundled alias 'smollm2'")
    objectives: list[str] = _list(["helpful", "harmless"], "objective names, one expert each, in the order of the "
                                  "reward ensemble they will be evaluated with")
    train_data: list[str] = _list(HH_TRAIN, "training data per objective (bundled name[:split] or file): dpo trains on "
                                  "its pairs, grpo on its prompts")
    eval_data: list[str] = _list(HH_TEST, "held-out pairs per objective: each expert's implicit-reward accuracy on every "
                                 "objective's pairs")
    method: str = _f("dpo", "dpo (TRL DPOTrainer on the objective's pairs) | grpo (single-reward GRPO on the objective's "
                     "reward in --ensemble, as train-policy)")
    ensemble: Optional[str] = _f(None, "grpo: reward ensemble folder whose objective rewards each expert")
    output_dir: str = _f("runs/experts", "experts.json, experts/<objective>/ (LoRA adapters), training/<objective>/ (logs)")
    max_train_pairs: Optional[int] = _f(None, "cap on training pairs (grpo: prompts) per objective")
    max_user_turns: Optional[int] = _f(None, "train only on prompts with at most this many user turns")
    max_eval_pairs: Optional[int] = _f(64, "cap on held-out pairs per objective")
    max_steps: int = _f(50, "optimisation steps per expert")
    learning_rate: float = _f(3e-4, "AdamW learning rate of the LoRA weights")
    per_device_train_batch_size: int = _f(8, "pairs (dpo) or completions (grpo, a multiple of num_generations) per step")
    beta: float = _f(0.1, "dpo: beta of the loss and of the reported implicit reward; grpo: KL penalty")
    max_length: int = _f(512, "dpo: tokens per prompt + reply")
    num_generations: int = _f(4, "grpo: completions per prompt")
    max_completion_length: int = _f(48, "grpo: tokens per completion")
    max_reply_tokens: int = _f(128, "held-out accuracy: reply tokens scored")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    report_to: str = _f("none", "extra loggers for TRL: none | tensorboard | wandb ...")
    trl: dict = _trl("DPOConfig (--method dpo) or GRPOConfig (--method grpo)")
    seed: int = _f(0, "random seed")
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        _one_of(self, "method", EXPERT_METHODS)
        _same_length(self, "objectives", "train_data")
        _same_length(self, "objectives", "eval_data")
        _positive(self, "max_steps", "learning_rate", "per_device_train_batch_size", "beta", "max_length",
                  "num_generations", "max_completion_length", "max_reply_tokens", "lora_r", "lora_alpha", "max_user_turns")
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(f"objectives: expected distinct objective names, got {self.objectives}")
        for o in self.objectives:  # each names a folder
            if not o or o in (".", "..") or "/" in o or "\\" in o:
                raise ConfigError(f"objectives: {o!r} cannot name an expert's folder")
        if self.method == "grpo" and not self.ensemble:
            raise ConfigError("method grpo: needs --ensemble (the reward of each objective)")


@dataclass
class MahaloConfig:
    """`preforch train-mahalo`: MAHALO, one output head per objective on a shared trunk, each trained with DPO on
    its objective's pairs (issue 13)."""

    base_model: str = _f("smollm2", "starting causal LM (also the frozen reference): hub id, path, or alias 'smollm2'")
    objectives: list[str] = _list(["helpful", "harmless", "arithmetic"], "objective names, one head each")
    train_data: list[str] = _list([*HH_TRAIN, "arithmetic"], "pairs per objective (bundled name[:split] or file); "
                                  "'arithmetic': word problems, the policy's correct sample chosen over a wrong one")
    eval_data: list[str] = _list([*HH_TEST, "arithmetic"], "held-out pairs per objective: the head x objective matrix")
    output_dir: str = _f("runs/mahalo", "policy/ (the MAHALO folder), training/ (log.jsonl, checkpoint), mahalo_run.json")
    pool: bool = _f(False, "baseline: one head trained on every objective's pairs pooled")
    max_train_pairs: Optional[int] = _f(200, "cap on training pairs (arithmetic: problems) per objective")
    max_eval_pairs: Optional[int] = _f(64, "cap on held-out pairs (arithmetic: problems) per objective")
    epochs: float = _f(1.0, "passes over the training pairs")
    max_steps: Optional[int] = _f(None, "steps, overriding epochs (equal compute across runs)")
    batch_size: int = _f(6, "pairs per step, split evenly across the objectives")
    learning_rate: float = _f(1e-5, "AdamW learning rate")
    head_learning_rate: Optional[float] = _f(None, "the heads' learning rate (default: learning_rate, as MAHALO); "
                                             "higher lets the heads, not the shared trunk, carry each objective")
    beta: float = _f(0.1, "DPO beta (and of the reported implicit reward)")
    sft_coefficient: float = _f(0.0, "weight of the chosen reply's per-token NLL added to each pair's DPO loss "
                                "(RPO); keeps DPO from lowering the likelihood of right answers")
    sft_objectives: list[str] = _list([], "objectives whose pairs get the NLL term (default: all); e.g. only a "
                                      "verifiable one, whose chosen answers are right, not another model's style")
    noise_std: float = _f(1e-3, "std of the noise added to each head's copy of the output matrix")
    head_adapter_rank: int = _f(0, "ours, not MAHALO's: give each head a bottleneck adapter of this rank on the trunk's "
                                "last hidden state (h + U gelu(D h), identity at start), trained with the head; 0 = off")
    use_lora: bool = _f(False, "LoRA on the trunk (merged when saved) instead of full fine-tuning; heads train fully")
    train_trunk: bool = _f(True, "false: the trunk stays the starting model's and only the heads (and their adapters) "
                           "learn, so no objective's pairs reach another objective's head; faster (no trunk backward)")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    max_prompt_tokens: int = _f(128, "prompt tokens kept (from the end)")
    max_reply_tokens: int = _f(128, "reply tokens kept (from the start)")
    arithmetic_level: str = _f("one-step", "arithmetic problems: 'one-step' (a 135M model gets some right) or "
                               "'two-step' (for bigger models)")
    arithmetic_samples: int = _f(8, "arithmetic pairs: samples per problem from the starting policy")
    arithmetic_max_new_tokens: int = _f(48, "arithmetic pairs: tokens per sample")
    arithmetic_batch_size: int = _f(16, "arithmetic pairs: problems per generate call (x arithmetic_samples rows); "
                                    "raise it on a GPU")
    save_steps: int = _f(50, "checkpoint every N steps")
    resume: bool = _f(False, "continue from OUTPUT_DIR/training/checkpoint")
    seed: int = _f(0, "random seed")
    report_to: str = _report_to()
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        _check_trackers(self)
        _same_length(self, "objectives", "train_data")
        _same_length(self, "objectives", "eval_data")
        _positive(self, "epochs", "max_steps", "batch_size", "learning_rate", "head_learning_rate", "beta",
                  "max_prompt_tokens", "max_reply_tokens", "arithmetic_samples", "arithmetic_max_new_tokens",
                  "arithmetic_batch_size", "save_steps")
        _non_negative(self, "noise_std", "sft_coefficient", "head_adapter_rank")
        from preforch.data.arithmetic import LEVELS

        _one_of(self, "arithmetic_level", tuple(LEVELS))
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(f"objectives: expected distinct objective names, got {self.objectives}")
        if self.use_lora and not self.train_trunk:
            raise ConfigError("use_lora adapts the trunk, train_trunk false freezes it: choose one")
        if set(self.sft_objectives) - set(self.objectives):
            raise ConfigError(f"sft_objectives: {sorted(set(self.sft_objectives) - set(self.objectives))} not among "
                              f"objectives {self.objectives}")


@dataclass
class ValueHeadConfig:
    """`preforch train-value-head`: the arithmetic objective's value head (a PRM for guided decoding), trained on
    hindsight labels of the policy's own samples (issue 13)."""

    policy: str = _f("smollm2", "the policy whose continuations the value predicts (any preference policy: a "
                     "train-mahalo folder, a model id or path)")
    method: Optional[str] = _f(None, METHOD_HELP)
    weights: Optional[str] = _f(None, "weights the policy samples under, e.g. helpful=0,harmless=0,arithmetic=1 "
                                "(default: uniform)")
    backbone: str = _f("smollm2", "frozen causal LM whose last hidden state the head reads: hub id, path or alias")
    level: str = _f("one-step", "arithmetic problems: one-step or two-step")
    problems: int = _f(128, "training problems (seed SEED)")
    eval_problems: int = _f(64, "held-out problems (seed SEED + 10000)")
    samples: int = _f(8, "samples per problem (temperature 1)")
    max_new_tokens: int = _f(48, "tokens per sample")
    boundary: str = _f("sentence", "step boundary: 'paragraph', 'sentence' or a literal marker")
    weight_decay: Optional[float] = _f(None, "L2 penalty of the logistic probe (on standardised features); default: "
                                       "chosen from 1e-4 .. 1 by 4-fold cross-validation over the training problems")
    output_dir: str = _f("runs/value_head", "value_head.json + value_head.safetensors")
    seed: int = _f(0, "random seed")
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        from preforch.data.arithmetic import LEVELS

        _positive(self, "problems", "eval_problems", "samples", "max_new_tokens")
        if self.weight_decay is not None:
            _non_negative(self, "weight_decay")
        _one_of(self, "level", tuple(LEVELS))
        _check_kind("method", self.method)
        if not self.boundary:
            raise ConfigError("boundary: empty")


@dataclass
class RLComparisonConfig(PolicyConfig):
    """`preforch rl-compare`: train several RL methods from one start on one prompt set (every train-policy
    option applies to each; `methods` replaces `method`), then judge the initial policy and every checkpoint
    on held-out prompts: reward-vs-step figure, before/after table, JSON."""

    methods: list[str] = _list(["pro-morlhf", "morlhf"], "arms to train and compare: a --method, or morlhf:uniform, "
                               "morlhf:best-fixed (the vector the orchestrator chose on its validation slice), "
                               "morlhf:<weights> (e.g. morlhf:helpful=0.7,harmless=0.3), single-reward:<objective>")
    output_dir: str = _f("runs/rl_compare", "one sub-folder per method, evaluations, report.md, rl_comparison.json")
    eval_data: list[str] = _list(HH_TEST, "held-out preference data whose prompts judge the policies")
    eval_prompts_per_source: int = _f(64, "held-out prompts drawn from each eval_data spec (never a training prompt)")
    eval_temperature: float = _f(0.8, "sampling temperature of the held-out answers (0: greedy)")
    reference_point: Optional[list[float]] = _f(None, "hypervolume reference point recorded in each evaluation (default -2 per objective)")
    judge: Optional[str] = _f(None, "reward ensemble that scores the held-out answers (default: --ensemble, which the "
                              "policies were trained to please; give held-out reward models for an independent judge)")
    train_only: bool = _f(False, "train the arms and stop: arms trained by parallel calls (one --methods each) are "
                          "judged by a later call without it, which finds them trained")
    overwrite: bool = _f(False, "retrain and re-evaluate (default: reuse finished stages, resume from checkpoints)")

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "eval_prompts_per_source")
        _non_negative(self, "eval_temperature")
        for m in self.methods:
            method, sep, setting = m.partition(":")
            _check_policy_method("methods", method)
            if sep and (method not in ("morlhf", "single-reward") or not setting):
                raise ConfigError(f"methods: {m!r}: only morlhf:<uniform|best-fixed|weights> and "
                                  "single-reward:<objective> take a setting")
        if "moslim" in self.methods:  # its policy reads a levels tag; rl-compare evaluates untagged prompts
            raise ConfigError("methods: moslim is not part of rl-compare; train it with train-policy --method moslim "
                              "and evaluate it with --method moslim")
        if len(set(self.methods)) != len(self.methods) or not self.methods:
            raise ConfigError(f"methods: expected distinct method names, got {self.methods}")


@dataclass
class PlotLogsConfig:
    """`preforch plot-logs RUN_DIR...`: a training metric against the step, one line per run."""

    runs: list[str] = _list([], "train-policy output folders (each with log.jsonl)")
    metric: str = _f("objectives/combined", "logged metric to plot, e.g. objectives/harmless/normalized, kl")
    smooth: int = _f(5, "moving-average window in steps")
    output: str = _f("reward_vs_step.png", "PNG to write")


@dataclass
class CompareConfig:
    """`preforch compare RUN_DIR...`: evaluation runs side by side."""

    runs: list[str] = _list([], "evaluation output folders (each with evaluation.json)")
    output_dir: str = _f("runs/compare", "report.md, comparison.json, front.png")


def rule_objective(spec: str) -> str:
    """The objective a rule spec scores: `objective=rule`, else the rule's own name (`module:function` -> function)."""
    objective, _, rule = spec.rpartition("=")
    return objective or rule.rpartition(":")[2]


def _objective_data(field_name: str, specs: list[str]) -> dict[str, str]:
    """objective -> data spec of `objective=data` entries; a malformed one is an error naming the field."""
    out = {}
    for spec in specs:
        objective, sep, data = spec.partition("=")
        if not (sep and objective and data):
            raise ConfigError(f"{field_name}: expected objective=data, got {spec!r}")
        out[objective] = data
    return out


def _same_length(cfg, a: str, b: str) -> None:
    if len(getattr(cfg, a)) != len(getattr(cfg, b)):
        raise ConfigError(f"{b}: needs one entry per objective ({len(getattr(cfg, a))} in {a}), got {len(getattr(cfg, b))}")


def _check_policy_method(field_name: str, method: str) -> None:
    if method not in POLICY_METHODS:
        raise ConfigError(f"{field_name}: expected one of {', '.join(POLICY_METHODS)}, got {method!r}")


def _check_kind(field_name: str, kind: Optional[str]) -> None:
    """A preference-policy kind must be registered (None: the policy folder's own)."""
    from preforch.serving.kinds import check_kind

    if kind is not None:
        check_kind(kind, field_name)


def _one_of(cfg, name: str, allowed: tuple[str, ...]) -> None:
    if getattr(cfg, name) not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {getattr(cfg, name)!r}")


def _positive(cfg, *names: str) -> None:
    """Each named field > 0 (an optional one left at None passes)."""
    for n in names:
        if getattr(cfg, n) is not None and not getattr(cfg, n) > 0:
            raise ConfigError(f"{n}: must be > 0, got {getattr(cfg, n)!r}")


def _non_negative(cfg, *names: str) -> None:
    for n in names:
        if not getattr(cfg, n) >= 0:
            raise ConfigError(f"{n}: must be >= 0, got {getattr(cfg, n)!r}")


def load_yaml(path: str | Path, cls) -> dict:
    """Read a YAML recipe section for `cls`; unknown keys are an error naming the file and key."""
    import yaml

    from preforch.io import read_text

    path = Path(path)
    try:
        data = yaml.safe_load(read_text(path, ConfigError)) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {unknown} for {cls.__name__}")
    return data


@dataclass
class WicConfig:
    """`preforch train-wic`: Pro-WiC / RiC, the preference rendered into the prompt (paper Eq. 10-11)."""

    method: str = _f("pro-wic", "pro-wic (self-weights softmax(r~/tau) in the prompt) | ric (target normalised scores, RiC)")
    stage: str = _f("offline", "offline (SFT on the preference data's replies) | online (sample, relabel, filter, SFT; "
                    "--policy must be a train-wic policy)")
    policy: str = _f("smollm2", "causal LM to start from: hub id, local path, alias 'smollm2'; online: a train-wic OUTPUT_DIR/policy")
    ensemble: str = _f("runs/quickstart/rewards", "reward ensemble folder (objectives + stored normalisation)")
    orchestrator: str = _f("runs/quickstart/orchestrator", "orchestrator folder (online preferences f_phi(x))")
    train_data: list[str] = _list(HH_TRAIN, "preference data: its chosen and rejected replies are the offline samples "
                                  "(online: mixed in, and they set the filter thresholds)")
    max_pairs: Optional[int] = _f(None, "cap on pairs per train_data spec")
    max_user_turns: Optional[int] = _f(None, "train and sample only on prompts with at most this many user turns "
                                       "(1: single-turn questions; shorter samples, more epochs per hour)")
    online_data: list[str] = _list(HH_TRAIN, "data whose prompts are sampled in the online stage")
    online_prompts: int = _f(32, "prompts per online iteration (a fresh slice of the shuffled online data each time)")
    iterations: int = _f(1, "online iterations")
    num_generations: int = _f(4, "replies sampled per prompt online")
    max_new_tokens: int = _f(48, "tokens per sampled reply")
    temperature: float = _f(0.8, "sampling temperature")
    top_p: float = _f(0.95, "nucleus sampling")
    generation_batch_size: int = _f(8, "prompts per generation batch")
    preference_source: Optional[str] = _f(None, "online preferences: orchestrator | random (Dirichlet(1)) | ric-goals "
                                          "(RiC's sample_goals: every objective but one at the top of its range) | "
                                          "uniform; default orchestrator for pro-wic, random for ric")
    online_filter: str = _f("ric", "ric (RiC's online stage: keep a generated sample if some score reaches the "
                            "filter_quantile of that round's generated scores; the offline samples mixed in pass the same "
                            "filter on the offline scores; kept samples accumulate across rounds) | offline-thresholds "
                            "(preforch before issue 29: thresholds from the offline scores, unfiltered offline mix, each "
                            "round's samples alone)")
    filter_quantile: float = _f(0.7, "the rejection filter's quantile (see online_filter)")
    offline_mix: int = _f(64, "offline samples mixed into each online SFT round")
    sft_steps_per_iteration: int = _f(20, "SFT steps per online iteration")
    max_steps: int = _f(60, "SFT steps of the offline stage")
    learning_rate: float = _f(2e-5, "AdamW learning rate")
    per_device_train_batch_size: int = _f(8, "SFT samples per device per step")
    max_length: int = _f(384, "tokens per SFT sample (prompt + reply); longer ones are cut, reply-less ones dropped")
    tau: Optional[float] = _f(None, "temperature of the self-weights softmax(r~/tau) (Eq. 10); offline default 1.0, "
                              "online: the policy's own")
    use_lora: bool = _f(False, "train LoRA adapters (peft) instead of all weights; merged into the saved policy")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    output_dir: str = _f("runs/wic", "policy/ (with wic.json), wic_run.json, log.jsonl, online samples")
    resume: bool = _f(False, "online: continue after the last finished iteration recorded in OUTPUT_DIR/wic_run.json "
                      "(same settings; --iterations may grow)")
    seed: int = _f(0, "random seed")
    report_to: str = _f("none", "extra loggers for TRL: none | tensorboard | wandb ...")
    trl: dict = _trl("SFTConfig")
    trust_remote_code: bool = _f(False, "allow custom model code from the hub")

    def __post_init__(self):
        _positive(self, "online_prompts", "iterations", "num_generations", "max_new_tokens", "temperature", "top_p",
                  "generation_batch_size", "sft_steps_per_iteration", "max_steps", "learning_rate",
                  "per_device_train_batch_size", "max_length")
        for name, value, allowed in (("method", self.method, ("pro-wic", "ric")), ("stage", self.stage, ("offline", "online")),
                                     ("preference_source", self.preference_source,
                                      (None, "orchestrator", "random", "ric-goals", "uniform")),
                                     ("online_filter", self.online_filter, ONLINE_FILTERS)):
            if value not in allowed:
                raise ConfigError(f"{name}: expected one of {[a for a in allowed if a]}, got {value!r}")
        if not 0 < self.filter_quantile < 1:
            raise ConfigError(f"filter_quantile: must be in (0, 1), got {self.filter_quantile!r}")
        if self.offline_mix < 0:
            raise ConfigError(f"offline_mix: must be >= 0, got {self.offline_mix!r}")
        if self.tau is not None:
            _positive(self, "tau")
        for name in ("max_pairs", "max_user_turns"):
            if getattr(self, name) is not None:
                _positive(self, name)

    @property
    def preference(self) -> str:
        """The online preference source, the method's default when not given."""
        return self.preference_source or ("orchestrator" if self.method == "pro-wic" else "random")


@dataclass
class WicComparisonConfig(WicConfig):
    """`preforch wic-compare`: Pro-WiC, RiC-online and RiC-offline (and with `expert_data` Rewarded Soups and MOD)
    from one start at one budget, each judged on held-out prompts across a preference grid. Every train-wic option
    applies to the WiC arms; the pipeline sets `method`, `stage` and `preference_source` per arm (Pro-WiC:
    orchestrator, RiC-online: random). The experts take the start model, max_pairs, max_user_turns, batch size,
    max_length and LoRA rank from the same options."""

    output_dir: str = _f("runs/wic_compare", "one folder per arm, evaluations, compare/, report.md, wic_comparison.json")
    eval_data: list[str] = _list(HH_TEST, "held-out preference data whose prompts judge the policies")
    eval_prompts_per_source: int = _f(24, "held-out prompts drawn from each eval_data spec")
    grid_divisions: int = _f(10, "simplex lattice resolution (K=2, d=10: 11 preferences)")
    reference_point: Optional[list[float]] = _f(None, "hypervolume reference point (default -2 per objective)")
    resume: bool = _f(True, "continue an unfinished online stage after its last finished iteration (false: restart it); "
                      "finished stages are always reused, --overwrite redoes all")
    eval_batch_size: int = _f(16, "prompts per generation batch in the evaluations")
    eval_temperature: float = _f(0.0, "temperature of the held-out answers; 0 decodes greedily, so answers to one prompt "
                                 "differ only through the preference in it")
    judge: Optional[str] = _f(None, "reward ensemble that scores every arm's answers (default: --ensemble, which also "
                              "trained the WiC arms; give held-out reward models for an independent judge)")
    expert_data: list[str] = _list([], "one training-data spec per ensemble objective, in its order: adds the soups and "
                                   "mod arms, one DPO LoRA expert per objective (e.g. hh-helpful:train hh-harmless:train)")
    expert_eval_data: list[str] = _list(HH_TEST, "held-out pairs per objective for the experts' implicit-reward table")
    expert_steps: Optional[int] = _f(None, "DPO steps per expert (default: a WiC arm's SFT steps split evenly between the experts)")
    expert_learning_rate: float = _f(3e-4, "AdamW learning rate of the experts' LoRA weights")
    expert_pairs: Optional[int] = _f(None, "training pairs per objective for the experts (default: max_pairs, the WiC "
                                     "arms' pairs; DPO pairs are human data, not generated, so more of them costs no "
                                     "extra steps)")
    online_filters: list[str] = _list(["ric"], "the online arms' filters (see train-wic --online_filter); each one beyond "
                                      "ric adds a Pro-WiC and a RiC-online arm named after it, on the same offline stages")
    ric_preferences: str = _f("random", "RiC-online's preferences: random (Dirichlet(1)) | ric-goals (RiC's sample_goals)")
    overwrite: bool = _f(False, "retrain and re-evaluate (default: reuse finished stages)")

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "eval_prompts_per_source", "grid_divisions", "eval_batch_size", "expert_steps", "expert_learning_rate",
                  "expert_pairs")
        _one_of(self, "ric_preferences", ("random", "ric-goals"))
        if not self.online_filters or len(set(self.online_filters)) != len(self.online_filters) or \
                any(f not in ONLINE_FILTERS for f in self.online_filters):
            raise ConfigError(f"online_filters: expected distinct values of {', '.join(ONLINE_FILTERS)}, got {self.online_filters}")
        _non_negative(self, "eval_temperature")
        if self.expert_data:
            _same_length(self, "expert_data", "expert_eval_data")
