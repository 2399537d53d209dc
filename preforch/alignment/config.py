"""Configs of the training methods: `train-policy`, `train-experts`, `train-mahalo`, `train-wic`."""

from __future__ import annotations

from typing import Optional

from preforch.alignment.algorithms import AGGREGATIONS, ALGORITHMS, SUM_THEN_NORMALIZE, algorithm_class
from preforch.alignment.methods import METHODS, check_method
from preforch.config import (HH_TEST, HH_TRAIN, RunConfig, check_non_negative, check_one_of, check_positive,
                             check_same_length, check_trackers, list_option, option, run_config, trl_option)
from preforch.data.arithmetic import LEVELS
from preforch.errors import ConfigError
from preforch.generation.wic_methods import check_wic_method, wic_method

ONLINE_FILTERS = ("ric", "offline-thresholds")


@run_config
class PolicyConfig(RunConfig):
    """`preforch train-policy`: Pro-MORLHF / MORLHF / single-reward RL through TRL (paper Eq. 9), under any training
    signal of alignment/algorithms.py."""

    method: str = option("pro-morlhf", f"{' | '.join(METHODS)}: the rows of preforch/alignment/methods.py, each "
                         "class's docstring says how it weights and rewards a prompt")
    algorithm: str = option("grpo", f"{' | '.join(ALGORITHMS)}: the training signal, a row of preforch/alignment/"
                            "algorithms.py (grpo: TRL GRPOTrainer; rloo: RLOOTrainer; ranked-dpo: DPO on the best and worst "
                            "of num_generations samples under each prompt's w . r~; modpo: DPO on pairs of one objective "
                            "with the others' weighted rewards as margin; online-dpo: TRL's online DPO)")
    aggregation: str = option(SUM_THEN_NORMALIZE, f"grpo: {' | '.join(AGGREGATIONS)}; sum-then-normalize is TRL's default "
                              "(only the direction of a prompt's weights survives its group's std); normalize-then-sum "
                              "normalises each objective within its group, then sums with the prompt's own weights")
    policy: str = option("smollm2", "causal LM to train: hub id, local path, or bundled alias 'smollm2'")
    ensemble: str = option("runs/quickstart/rewards", "reward ensemble folder (objectives + stored normalisation)")
    orchestrator: Optional[str] = option("runs/quickstart/orchestrator", "orchestrator folder (pro-morlhf)")
    weight_temperature: Optional[float] = option(None, "pro-morlhf: the temperature T of the orchestrator's weights "
                                                 "softmax(logits / T) (default: its calibrated one); lower is sharper")
    weights: Optional[str] = option(None, "morlhf: fixed weights, e.g. helpful=0.5,harmless=0.5 (default uniform); "
                                    "harmless=0.5,auto: the orchestrator fills the rest per prompt")
    objective: Optional[str] = option(None, "single-reward: the one objective to optimise")
    # MOSLIM
    classifier: Optional[str] = option(None, "moslim: classification reward model folder (train-rm --levels ...)")
    mapping: str = option("probability", "moslim: class probabilities -> reward: probability (Eq. 11, z-scored probability of "
                          "the requested level) | expected (z-scored expected level, signed toward the request) | distance")
    train_data: list[str] = list_option(HH_TRAIN, "preference data whose prompts are the RL prompts")
    max_prompts: Optional[int] = option(None, "cap on prompts per data spec")
    max_prompt_tokens: int = option(256, "keep each RL prompt within this many tokens of the policy's chat template, "
                                    "dropping the oldest turns first (GRPO pads a batch to its longest prompt; HH "
                                    "dialogues reach ~1,000 tokens); 0: whole prompts")
    output_dir: str = option("runs/policy", "checkpoints, log.jsonl and the final policy in OUTPUT_DIR/policy")
    max_steps: int = option(50, "optimisation steps")
    learning_rate: float = option(5e-6, "AdamW learning rate")
    per_device_train_batch_size: int = option(8, "completions per device per step (a multiple of num_generations); "
                                              "ranked-dpo, modpo: pairs; online-dpo: prompts, 2 completions each")
    num_generations: int = option(4, "completions per prompt (the group for GRPO / RLOO baselines; ranked-dpo, modpo: "
                                  "the candidates ranked per prompt)")
    max_completion_length: int = option(48, "tokens per completion")
    temperature: float = option(1.0, "sampling temperature during training")
    beta: float = option(0.04, "KL penalty to the reference policy (ranked-dpo, modpo, online-dpo: DPO's beta)")
    modpo_objective: Optional[str] = option(None, "modpo: the objective whose reward labels each pair (MODPO's "
                                            "preference objective k; the others enter as the margin); default: each "
                                            "prompt's largest-weight objective that applies")
    candidates_cache: Optional[str] = option(None, "ranked-dpo, modpo: folder of the starting policy's sampled candidates, a "
                                             "file per policy, prompts, sampling settings and seed, so every arm ranks "
                                             "the same ones; default OUTPUT_DIR/../ranked_candidates (rl-compare's arms "
                                             "share it)")
    use_lora: bool = option(False, "train LoRA adapters (peft) instead of all weights; merged into the saved policy")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA alpha")
    use_vllm: bool = option(False, "generate with vLLM (needs vllm installed and a GPU)")
    pad_to_multiple_of: Optional[int] = option(None, "round padded prompt and completion lengths up to a multiple of this; "
                                               "default 16 on CPU with bf16 (bounds oneDNN's per-shape kernel memory in long "
                                               "runs), TRL's default elsewhere")
    logging_steps: int = option(1, "log every N steps (console, log.jsonl, report_to)")
    save_steps: int = option(25, "checkpoint every N steps")
    resume: bool = option(False, "continue from the newest checkpoint in output_dir")
    report_to: str = option("none", "extra loggers for TRL: none | tensorboard | wandb ...")
    trl: dict = trl_option("the TRL config of --algorithm (GRPOConfig, RLOOConfig, DPOConfig, OnlineDPOConfig)")

    def __post_init__(self):
        check_positive(self, "max_steps", "learning_rate", "per_device_train_batch_size", "num_generations", "max_completion_length")
        check_non_negative(self, "max_prompt_tokens")
        check_positive(self, "weight_temperature")
        check_method(self.method, "method")
        check_one_of(self, "mapping", ("probability", "expected", "distance"))
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ConfigError(f"pad_to_multiple_of: expected a positive number of tokens, got {self.pad_to_multiple_of}")
        algorithm = algorithm_class(self.algorithm, "algorithm")
        check_one_of(self, "aggregation", AGGREGATIONS)
        if self.aggregation not in algorithm.aggregations:
            raise ConfigError(f"aggregation: {self.aggregation} is not available with --algorithm {self.algorithm} "
                              f"(it takes {', '.join(algorithm.aggregations)})")
        if algorithm.samples_groups and self.per_device_train_batch_size % self.num_generations:
            raise ConfigError(f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be a multiple "
                              f"of num_generations ({self.num_generations})")


EXPERT_METHODS = ("dpo", "grpo")


@run_config
class ExpertsConfig(RunConfig):
    """`preforch train-experts`: one LoRA expert per objective on one base model, for the soups and mod kinds."""

    base_model: str = option("smollm2", "causal LM every expert adapts: hub id, local path, or bundled alias 'smollm2'")
    objectives: list[str] = list_option(["helpful", "harmless"], "objective names, one expert each, in the order of the "
                                        "reward ensemble they will be evaluated with")
    train_data: list[str] = list_option(HH_TRAIN, "training data per objective (bundled name[:split] or file): dpo trains on "
                                        "its pairs, grpo on its prompts")
    eval_data: list[str] = list_option(HH_TEST, "held-out pairs per objective: each expert's implicit-reward accuracy on every "
                                       "objective's pairs")
    method: str = option("dpo", "dpo (TRL DPOTrainer on the objective's pairs) | grpo (single-reward GRPO on the objective's "
                         "reward in --ensemble, as train-policy)")
    ensemble: Optional[str] = option(None, "grpo: reward ensemble folder whose objective rewards each expert")
    output_dir: str = option("runs/experts", "experts.json, experts/<objective>/ (LoRA adapters), training/<objective>/ (logs)")
    max_train_pairs: Optional[int] = option(None, "cap on training pairs (grpo: prompts) per objective")
    max_user_turns: Optional[int] = option(None, "train only on prompts with at most this many user turns")
    max_eval_pairs: Optional[int] = option(64, "cap on held-out pairs per objective")
    max_steps: int = option(50, "optimisation steps per expert")
    learning_rate: float = option(3e-4, "AdamW learning rate of the LoRA weights")
    per_device_train_batch_size: int = option(8, "pairs (dpo) or completions (grpo, a multiple of num_generations) per step")
    beta: float = option(0.1, "dpo: beta of the loss and of the reported implicit reward; grpo: KL penalty")
    max_length: int = option(512, "dpo: tokens per prompt + reply")
    num_generations: int = option(4, "grpo: completions per prompt")
    max_completion_length: int = option(48, "grpo: tokens per completion")
    max_reply_tokens: int = option(128, "held-out accuracy: reply tokens scored")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA alpha")
    report_to: str = option("none", "extra loggers for TRL: none | tensorboard | wandb ...")
    trl: dict = trl_option("DPOConfig (--method dpo) or GRPOConfig (--method grpo)")

    def __post_init__(self):
        check_one_of(self, "method", EXPERT_METHODS)
        check_same_length(self, "objectives", "train_data")
        check_same_length(self, "objectives", "eval_data")
        check_positive(self, "max_steps", "learning_rate", "per_device_train_batch_size", "beta", "max_length",
                       "num_generations", "max_completion_length", "max_reply_tokens", "lora_r", "lora_alpha", "max_user_turns")
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(f"objectives: expected distinct objective names, got {self.objectives}")
        for o in self.objectives:  # each names a folder
            if not o or o in (".", "..") or "/" in o or "\\" in o:
                raise ConfigError(f"objectives: {o!r} cannot name an expert's folder")
        if self.method == "grpo" and not self.ensemble:
            raise ConfigError("method grpo: needs --ensemble (the reward of each objective)")


@run_config
class MahaloConfig(RunConfig):
    """`preforch train-mahalo`: MAHALO, one output head per objective on a shared trunk, each trained with DPO on
    its objective's pairs."""

    base_model: str = option("smollm2", "starting causal LM (also the frozen reference): hub id, path, or alias 'smollm2'")
    objectives: list[str] = list_option(["helpful", "harmless", "arithmetic"], "objective names, one head each")
    train_data: list[str] = list_option([*HH_TRAIN, "arithmetic"], "pairs per objective (bundled name[:split] or file); "
                                        "'arithmetic': word problems, the policy's correct sample chosen over a wrong one")
    eval_data: list[str] = list_option([*HH_TEST, "arithmetic"], "held-out pairs per objective: the head x objective matrix")
    output_dir: str = option("runs/mahalo", "policy/ (the MAHALO folder), training/ (log.jsonl, checkpoint), mahalo_run.json")
    pool: bool = option(False, "baseline: one head trained on every objective's pairs pooled")
    max_train_pairs: Optional[int] = option(200, "cap on training pairs (arithmetic: problems) per objective")
    max_eval_pairs: Optional[int] = option(64, "cap on held-out pairs (arithmetic: problems) per objective")
    epochs: float = option(1.0, "passes over the training pairs")
    max_steps: Optional[int] = option(None, "steps, overriding epochs (equal compute across runs)")
    batch_size: int = option(6, "pairs per step, split evenly across the objectives")
    learning_rate: float = option(1e-5, "AdamW learning rate")
    head_learning_rate: Optional[float] = option(None, "the heads' learning rate (default: learning_rate, as MAHALO); "
                                                 "higher lets the heads, not the shared trunk, carry each objective")
    beta: float = option(0.1, "DPO beta (and of the reported implicit reward)")
    sft_coefficient: float = option(0.0, "weight of the chosen reply's per-token NLL added to each pair's DPO loss "
                                    "(RPO); keeps DPO from lowering the likelihood of right answers")
    sft_objectives: list[str] = list_option([], "objectives whose pairs get the NLL term (default: all); e.g. only a "
                                            "verifiable one, whose chosen answers are right, not another model's style")
    noise_std: float = option(1e-3, "std of the noise added to each head's copy of the output matrix")
    head_adapter_rank: int = option(0, "ours, not MAHALO's: give each head a bottleneck adapter of this rank on the trunk's "
                                    "last hidden state (h + U gelu(D h), identity at start), trained with the head; 0 = off")
    use_lora: bool = option(False, "LoRA on the trunk (merged when saved) instead of full fine-tuning; heads train fully")
    train_trunk: bool = option(True, "false: the trunk stays the starting model's and only the heads (and their adapters) "
                               "learn, so no objective's pairs reach another objective's head; faster (no trunk backward)")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA alpha")
    max_prompt_tokens: int = option(128, "prompt tokens kept (from the end)")
    max_reply_tokens: int = option(128, "reply tokens kept (from the start)")
    arithmetic_level: str = option("one-step", "arithmetic problems: 'one-step' (a 135M model gets some right) or "
                                   "'two-step' (for bigger models)")
    arithmetic_samples: int = option(8, "arithmetic pairs: samples per problem from the starting policy")
    arithmetic_max_new_tokens: int = option(48, "arithmetic pairs: tokens per sample")
    arithmetic_batch_size: int = option(16, "arithmetic pairs: problems per generate call (x arithmetic_samples rows); "
                                        "raise it on a GPU")
    save_steps: int = option(50, "checkpoint every N steps")
    resume: bool = option(False, "continue from OUTPUT_DIR/training/checkpoint")

    def __post_init__(self):
        check_trackers(self)
        check_same_length(self, "objectives", "train_data")
        check_same_length(self, "objectives", "eval_data")
        check_positive(self, "epochs", "max_steps", "batch_size", "learning_rate", "head_learning_rate", "beta",
                       "max_prompt_tokens", "max_reply_tokens", "arithmetic_samples", "arithmetic_max_new_tokens",
                       "arithmetic_batch_size", "save_steps")
        check_non_negative(self, "noise_std", "sft_coefficient", "head_adapter_rank")
        check_one_of(self, "arithmetic_level", tuple(LEVELS))
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(f"objectives: expected distinct objective names, got {self.objectives}")
        if self.use_lora and not self.train_trunk:
            raise ConfigError("use_lora adapts the trunk, train_trunk false freezes it: choose one")
        if set(self.sft_objectives) - set(self.objectives):
            raise ConfigError(f"sft_objectives: {sorted(set(self.sft_objectives) - set(self.objectives))} not among "
                              f"objectives {self.objectives}")


@run_config
class WicConfig(RunConfig):
    """`preforch train-wic`: Pro-WiC / RiC, the preference rendered into the prompt (paper Eq. 10-11)."""

    method: str = option("pro-wic", "pro-wic (self-weights softmax(r~/tau) in the prompt) | ric (target normalised "
                         "scores, RiC); any row of generation/wic_methods.py's WIC_METHODS")
    stage: str = option("offline", "offline (SFT on the preference data's replies) | online (sample, relabel, filter, SFT; "
                        "--policy must be a train-wic policy)")
    policy: str = option("smollm2", "causal LM to start from: hub id, local path, alias 'smollm2'; online: a train-wic OUTPUT_DIR/policy")
    ensemble: str = option("runs/quickstart/rewards", "reward ensemble folder (objectives + stored normalisation)")
    orchestrator: str = option("runs/quickstart/orchestrator", "orchestrator folder (online preferences f_phi(x))")
    train_data: list[str] = list_option(HH_TRAIN, "preference data: its chosen and rejected replies are the offline samples "
                                        "(online: mixed in, and they set the filter thresholds)")
    max_pairs: Optional[int] = option(None, "cap on pairs per train_data spec")
    max_user_turns: Optional[int] = option(None, "train and sample only on prompts with at most this many user turns "
                                           "(1: single-turn questions; shorter samples, more epochs per hour)")
    online_data: list[str] = list_option(HH_TRAIN, "data whose prompts are sampled in the online stage")
    online_prompts: int = option(32, "prompts per online iteration (a fresh slice of the shuffled online data each time)")
    iterations: int = option(1, "online iterations")
    num_generations: int = option(4, "replies sampled per prompt online")
    max_new_tokens: int = option(48, "tokens per sampled reply")
    temperature: float = option(0.8, "sampling temperature")
    top_p: float = option(0.95, "nucleus sampling")
    generation_batch_size: int = option(8, "prompts per generation batch")
    preference_source: Optional[str] = option(None, "online preferences: orchestrator | random (Dirichlet(1)) | ric-goals "
                                              "(RiC's sample_goals: every objective but one at the top of its range) | "
                                              "uniform; default orchestrator for pro-wic, random for ric")
    online_filter: str = option("ric", "ric (RiC's online stage: keep a generated sample if some score reaches the "
                                "filter_quantile of that round's generated scores; the offline samples mixed in pass the same "
                                "filter on the offline scores; kept samples accumulate across rounds) | offline-thresholds "
                                "(preforch before 2026-12-05: thresholds from the offline scores, unfiltered offline mix, each "
                                "round's samples alone)")
    filter_quantile: float = option(0.7, "the rejection filter's quantile (see online_filter)")
    offline_mix: int = option(64, "offline samples mixed into each online SFT round")
    sft_steps_per_iteration: int = option(20, "SFT steps per online iteration")
    max_steps: int = option(60, "SFT steps of the offline stage")
    learning_rate: float = option(2e-5, "AdamW learning rate")
    per_device_train_batch_size: int = option(8, "SFT samples per device per step")
    max_length: int = option(384, "tokens per SFT sample (prompt + reply); longer ones are cut, reply-less ones dropped")
    tau: Optional[float] = option(None, "temperature of the self-weights softmax(r~/tau) (Eq. 10); offline default 1.0, "
                                  "online: the policy's own")
    use_lora: bool = option(False, "train LoRA adapters (peft) instead of all weights; merged into the saved policy")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA alpha")
    output_dir: str = option("runs/wic", "policy/ (with wic.json), wic_run.json, log.jsonl, online samples")
    resume: bool = option(False, "online: continue after the last finished iteration recorded in OUTPUT_DIR/wic_run.json "
                          "(same settings; --iterations may grow)")
    report_to: str = option("none", "extra loggers for TRL: none | tensorboard | wandb ...")
    trl: dict = trl_option("SFTConfig")

    def __post_init__(self):
        check_positive(self, "online_prompts", "iterations", "num_generations", "max_new_tokens", "temperature", "top_p",
                       "generation_batch_size", "sft_steps_per_iteration", "max_steps", "learning_rate",
                       "per_device_train_batch_size", "max_length")
        check_wic_method(self.method, "method")
        for name, value, allowed in (("stage", self.stage, ("offline", "online")),
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
            check_positive(self, "tau")
        for name in ("max_pairs", "max_user_turns"):
            if getattr(self, name) is not None:
                check_positive(self, name)

    @property
    def preference(self) -> str:
        """The online preference source, the method's default when not given."""
        return self.preference_source or wic_method(self.method).preference_source
