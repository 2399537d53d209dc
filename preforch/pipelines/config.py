"""Configs of the pipelines: `quickstart`, `build-benchmark`, `rl-compare`, `headline`, `wic-compare`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from preforch.alignment.algorithms import SUM_THEN_NORMALIZE, algorithm_class
from preforch.alignment.config import ONLINE_FILTERS, PolicyConfig, WicConfig
from preforch.alignment.methods import METHODS, method_class
from preforch.config import (HH_TEST, HH_TRAIN, RunConfig, check_non_negative, check_one_of, check_positive,
                             check_same_length, list_option, option, parse_objective_data, run_config)
from preforch.data.loaders import HALVES
from preforch.errors import ConfigError
from preforch.modeling import POOLINGS
from preforch.orchestrator.config import ORCHESTRATOR_OBJECTIVES
from preforch.rewards.config import rule_objective


@dataclass
class QuickstartConfig:
    """`preforch quickstart`: the whole PRO idea on the bundled defaults, on a CPU, in minutes."""

    output_dir: str = option("runs/quickstart", "run folder (report.md, metrics.json, plots, models)")
    policy: str = option("smollm2", "causal LM for best-of-N")
    reward_base_model: str = option("minilm", "backbone of the multi-head reward model")
    encoder: str = option("reward-model", "orchestrator encoder: 'reward-model' (the reward model's own, trained in stage 2), "
                          "a hub id, local path or 'minilm'")
    rules: list[str] = list_option(["conciseness"], "rule-based objectives added to helpful and harmless")
    rm_epochs: float = option(1.0, "reward-model epochs")
    rm_learning_rate: float = option(1e-4, "reward-model learning rate")
    center_coefficient: float = option(0.1, "reward-centering weight (pins the prompt offset BT leaves free)")
    max_train_pairs: Optional[int] = option(None, "cap on training pairs per source (for a faster smoke run)")
    max_eval_pairs: Optional[int] = option(None, "cap on held-out pairs per source")
    tau: float = option(1.0, "target temperature (Eq. 7)")
    orchestrator_objective: str = option("bradley-terry", "objective of the orchestrator the run serves (see train-orchestrator "
                                         "--objective; chosen by validation accuracy, docs/design.md)")
    side_objectives: list[str] = list_option(["kl"], "other orchestrator objectives trained on the same scores and reported "
                                             "beside it (kl = the paper's Eq. 8)")
    bon_prompts_per_source: int = option(16, "held-out prompts per source for the best-of-N comparison")
    num_candidates: int = option(4, "N in best-of-N")
    max_new_tokens: int = option(48, "tokens per candidate")
    seed: int = option(0, "random seed")
    overwrite: bool = option(False, "retrain stages whose outputs already exist (default: reuse them, i.e. resume)")

    def __post_init__(self):
        check_positive(self, "rm_epochs", "tau", "num_candidates", "max_new_tokens", "bon_prompts_per_source")
        check_one_of(self, "orchestrator_objective", ORCHESTRATOR_OBJECTIVES)
        for objective in self.side_objectives:
            if objective not in ORCHESTRATOR_OBJECTIVES or objective == self.orchestrator_objective:
                raise ConfigError(f"side_objectives: expected objectives from {ORCHESTRATOR_OBJECTIVES} other than "
                                  f"orchestrator_objective {self.orchestrator_objective!r}, got {objective!r}")


MIXED_INTENT_TRAIN = [*HH_TRAIN, "arithmetic-smollm2:train"]
# the HH test pairs split by first human turn: the judge trains on one half, the evaluation reads the other
HH_TEST_JUDGE, HH_TEST_EVAL = ([f"{s}#{half}" for s in HH_TEST] for half in HALVES)
MIXED_INTENT_TEST = [*HH_TEST_EVAL, "arithmetic-smollm2:test"]


@dataclass
class BenchmarkConfig:
    """`preforch build-benchmark`: the reward stack of a comparison in one folder. Reward models on the training
    pairs plus rules form the ensemble; an independent judge (reward models trained on the held-out pairs, the same
    rules) scores policies and trains nothing; the orchestrator learns from every source's pairs without being told
    the source. Default: the mixed-intent benchmark (harmful requests, benign requests, arithmetic problems)."""

    output_dir: str = option("runs/mixed_intent", "reward_model/, rewards/, judge/, orchestrator/, benchmark.json, report.md")
    reward_base_model: str = option("minilm", "backbone of the training reward models (and of the judge's, unless "
                                    "judge_base_model)")
    judge_base_model: Optional[str] = option(None, "backbone of the judge's reward models (default: reward_base_model); "
                                             "another one keeps the judge from sharing the training models' blind spots")
    judge_pooling: str = option("auto", "the judge's pooling (see train-rm --pooling; a causal LM such as smollm2 "
                                "learns with last)")
    judge_learning_rate: float = option(1e-4, "the judge's learning rate (see train-rm --learning_rate)")
    objectives: list[str] = list_option(["helpful", "harmless"], "learned objectives, one reward-model head each")
    rm_train_data: list[str] = list_option(HH_TRAIN, "pairs per learned objective for the training reward models")
    judge_train_data: list[str] = list_option(HH_TEST_JUDGE, "pairs per learned objective for the judge's reward models (held "
                                              "out from every policy and from the orchestrator); refused if any shares a "
                                              "first human turn with eval_data")
    judge_eval_data: list[str] = list_option(HH_TRAIN, "pairs per learned objective on which the judge's accuracy is read")
    rules: list[str] = list_option(["arithmetic=exact_match"], "rule objectives of both ensembles (a rule is its own judge)")
    train_data: list[str] = list_option(MIXED_INTENT_TRAIN, "the orchestrator's training pairs, every source (also the "
                                        "ensemble's reference set)")
    eval_data: list[str] = list_option(MIXED_INTENT_TEST, "held-out pairs: the orchestrator's evaluation, the judge's reference set")
    objective_reference: list[str] = list_option(["arithmetic=arithmetic-smollm2:train"], "objective=data: that objective's "
                                                 "z-score fitted on that data only (see build-ensemble)")
    judge_objective_reference: list[str] = list_option(["arithmetic=arithmetic-smollm2:test"], "the same for the judge")
    encoder: str = option("reward-model", "orchestrator encoder (see train-orchestrator --encoder)")
    orchestrator_objective: str = option("bradley-terry", "see train-orchestrator --objective")
    positive_source: str = option("hh-harmless", "source whose prompts are the AUROC's positives")
    rm_epochs: float = option(1.0, "training reward models' epochs")
    judge_epochs: float = option(3.0, "judge reward models' epochs (fewer pairs)")
    max_judge_eval_pairs: Optional[int] = option(500, "cap on judge_eval_data pairs per objective")
    max_train_pairs: Optional[int] = option(None, "cap on training pairs per data spec (a fast smoke run)")
    max_eval_pairs: Optional[int] = option(None, "cap on held-out pairs per data spec (a fast smoke run)")
    seed: int = option(0, "random seed")
    overwrite: bool = option(False, "rebuild stages whose outputs exist (default: reuse them)")

    def __post_init__(self):
        check_same_length(self, "objectives", "rm_train_data")
        check_same_length(self, "objectives", "judge_train_data")
        check_same_length(self, "objectives", "judge_eval_data")
        check_one_of(self, "orchestrator_objective", ORCHESTRATOR_OBJECTIVES)
        check_one_of(self, "judge_pooling", ("auto", *POOLINGS))
        check_positive(self, "rm_epochs", "judge_epochs", "judge_learning_rate", "max_judge_eval_pairs", "max_train_pairs",
                       "max_eval_pairs")
        known = [*self.objectives, *(rule_objective(r) for r in self.rules)]
        for name in ("objective_reference", "judge_objective_reference"):
            unknown = sorted(set(parse_objective_data(name, getattr(self, name))) - set(known))
            if unknown:
                raise ConfigError(f"{name}: objective(s) {unknown} not among the ensemble's {known}")


def arm_parts(arm: str, cfg: PolicyConfig) -> tuple[str, str | None, str, str]:
    """(method, setting or None, algorithm, aggregation) of an rl-compare arm `method[:setting][@algorithm[/aggregation]]`;
    the signal defaults to `cfg`'s --algorithm / --aggregation (the aggregation to TRL's when the arm names only an
    algorithm)."""
    head, at, signal = arm.partition("@")
    method, sep, setting = head.partition(":")
    algorithm, slash, aggregation = signal.partition("/")
    if not at:
        return method, setting if sep else None, cfg.algorithm, cfg.aggregation
    return method, setting if sep else None, algorithm, aggregation if slash else SUM_THEN_NORMALIZE


def arm_signal(arm: str, cfg: PolicyConfig) -> tuple[str, str]:
    """(training signal, role) of an rl-compare arm: `pro-morlhf:temperature=0.2@grpo/normalize-then-sum` ->
    ('grpo/normalize-then-sum', 'pro-morlhf:temperature=0.2'); the signal is the algorithm alone when it takes one
    aggregation (`ranked-dpo`)."""
    method, setting, algorithm, aggregation = arm_parts(arm, cfg)
    signal = algorithm if len(algorithm_class(algorithm).aggregations) == 1 else f"{algorithm}/{aggregation}"
    return signal, method if setting is None else f"{method}:{setting}"


@run_config
class RLComparisonConfig(PolicyConfig):
    """`preforch rl-compare`: train several RL methods from one start on one prompt set (every train-policy
    option applies to each; `methods` replaces `method`), then judge the initial policy and every checkpoint
    on held-out prompts: reward-vs-step figure, before/after table, JSON."""

    methods: list[str] = list_option(["pro-morlhf", "morlhf"], "arms to train and compare: a --method, or morlhf:uniform, "
                                     "morlhf:best-fixed (the vector the orchestrator chose on its validation slice), "
                                     "morlhf:<weights> (e.g. morlhf:helpful=0.7,harmless=0.3), single-reward:<objective>; "
                                     "an arm may end in @<algorithm>[/<aggregation>] to train under another signal than "
                                     "--algorithm / --aggregation, e.g. pro-morlhf@grpo/normalize-then-sum, morlhf@rloo")
    output_dir: str = option("runs/rl_compare", "one sub-folder per method, evaluations, report.md, rl_comparison.json")
    eval_data: list[str] = list_option(HH_TEST, "held-out preference data whose prompts judge the policies")
    eval_prompts_per_source: int = option(64, "held-out prompts drawn from each eval_data spec (never a training prompt)")
    eval_temperature: float = option(0.8, "sampling temperature of the held-out answers (0: greedy)")
    reference_point: Optional[list[float]] = option(None, "hypervolume reference point recorded in each evaluation (default -2 per objective)")
    judge: Optional[str] = option(None, "reward ensemble that scores the held-out answers (default: --ensemble, which the "
                                  "policies were trained to please; give held-out reward models for an independent judge)")
    train_only: bool = option(False, "train the arms and stop: arms trained by parallel calls (one --methods each) are "
                              "judged by a later call without it, which finds them trained")
    overwrite: bool = option(False, "retrain and re-evaluate (default: reuse finished stages, resume from checkpoints)")

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "eval_prompts_per_source")
        check_non_negative(self, "eval_temperature")
        for m in self.methods:
            method, setting, algorithm, aggregation = arm_parts(m, self)
            cls = method_class(method, "methods")
            if setting is not None and (cls.arm_setting is None or not setting):
                takes = [f"{name}:{method_class(name).arm_setting}" for name in METHODS
                         if method_class(name).arm_setting is not None]
                raise ConfigError(f"methods: {m!r}: only {' and '.join(takes)} take a setting")
            if cls.not_in_rl_compare:
                raise ConfigError(f"methods: {method} is not part of rl-compare: {cls.not_in_rl_compare}")
            signal = algorithm_class(algorithm, f"methods: {m!r}: algorithm")
            if aggregation not in signal.aggregations:
                raise ConfigError(f"methods: {m!r}: aggregation {aggregation!r} is not available with algorithm "
                                  f"{algorithm} (it takes {', '.join(signal.aggregations)})")
        if len(set(self.methods)) != len(self.methods) or not self.methods:
            raise ConfigError(f"methods: expected distinct method names, got {self.methods}")


# The primary metric's pair under each training signal: Pro minus the best fixed vector chosen on validation
PRIMARY_PAIR = ("pro-morlhf", "morlhf:best-fixed")


@run_config
class HeadlineConfig(RLComparisonConfig):
    """`preforch headline`: PRO's headline test as docs/design.md fixes it ("The headline test, fixed before it
    runs"): every arm trained from one start under each of several training seeds, each final policy judged by an
    independent judge on the same held-out prompts (one evaluation seed); the primary metric (Pro minus best
    fixed on each prompt's own objective) per signal, per seed and pooled, with its noise floor and secondary
    checks. Every rl-compare option applies; --seed is replaced by --seeds."""

    methods: list[str] = list_option(["pro-morlhf@ranked-dpo", "morlhf:best-fixed@ranked-dpo", "morlhf:uniform@ranked-dpo"],
                                     "arms as rl-compare's --methods; each training signal (@algorithm[/aggregation]) needs "
                                     "pro-morlhf and morlhf:best-fixed, the primary pair")
    seeds: list[int] = list_option([0, 1], "training seeds; every arm is trained once per seed (at least two: the noise floor)")
    eval_seed: int = option(1234, "seed of the held-out prompt draw and of sampling the answers: one for every arm and "
                            "training seed, so all are judged on the same prompts")
    weight_data: list[str] = list_option([], "extra data specs whose prompts' weights each arm reports (e.g. "
                                         "arithmetic-fresh:trained:200 and arithmetic-fresh:fresh:200: one template or both)")
    output_dir: str = option("runs/headline", "seed<s>/<arm> training folders, eval/, replies.jsonl.gz, headline.json, "
                             "report.md, headline.png")

    def __post_init__(self):
        super().__post_init__()
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
            raise ConfigError(f"seeds: expected distinct training seeds, got {self.seeds}")
        if self.train_only:  # one call may train some arms and seeds (parallel calls on a GPU); the test needs all
            return
        if len(self.seeds) < 2:
            raise ConfigError(f"seeds: expected at least two distinct training seeds (the noise floor), got {self.seeds}")
        if not self.judge:
            raise ConfigError("judge: the headline test needs an independent judge (reward models that trained and "
                              "guided no arm, e.g. build-benchmark's OUTPUT_DIR/judge/rewards)")
        for signal, roles in self.arms_by_signal().items():
            missing = [r for r in PRIMARY_PAIR if r not in roles]
            if missing:
                raise ConfigError(f"methods: the {signal} arms lack {' and '.join(missing)}: the primary metric "
                                  f"compares {PRIMARY_PAIR[0]} with {PRIMARY_PAIR[1]} under each training signal")

    def arms_by_signal(self) -> dict[str, dict[str, str]]:
        """{training signal: {role: arm}} in the order of --methods (see `arm_signal`)."""
        out: dict[str, dict[str, str]] = {}
        for arm in self.methods:
            signal, role = arm_signal(arm, self)
            out.setdefault(signal, {})[role] = arm
        return out


@run_config
class WicComparisonConfig(WicConfig):
    """`preforch wic-compare`: Pro-WiC, RiC-online and RiC-offline (and with `expert_data` Rewarded Soups and MOD)
    from one start at one budget, each judged on held-out prompts across a preference grid. Every train-wic option
    applies to the WiC arms; the pipeline sets `method`, `stage` and `preference_source` per arm (Pro-WiC:
    orchestrator, RiC-online: random). The experts take the start model, max_pairs, max_user_turns, batch size,
    max_length and LoRA rank from the same options."""

    output_dir: str = option("runs/wic_compare", "one folder per arm, evaluations, compare/, report.md, wic_comparison.json")
    eval_data: list[str] = list_option(HH_TEST, "held-out preference data whose prompts judge the policies")
    eval_prompts_per_source: int = option(24, "held-out prompts drawn from each eval_data spec")
    eval_seed: Optional[int] = option(None, "seed of the held-out prompt draw and the answers' sampling (default: --seed); "
                                      "runs with other --seed but one --eval_seed judge the same prompts, so their arms "
                                      "pair prompt by prompt across training seeds")
    grid_divisions: int = option(10, "simplex lattice resolution (K=2, d=10: 11 preferences)")
    reference_point: Optional[list[float]] = option(None, "hypervolume reference point (default -2 per objective)")
    resume: bool = option(True, "continue an unfinished online stage after its last finished iteration (false: restart it); "
                          "finished stages are always reused, --overwrite redoes all")
    eval_batch_size: int = option(16, "prompts per generation batch in the evaluations")
    eval_temperature: float = option(0.0, "temperature of the held-out answers; 0 decodes greedily, so answers to one prompt "
                                     "differ only through the preference in it")
    judge: Optional[str] = option(None, "reward ensemble that scores every arm's answers (default: --ensemble, which also "
                                  "trained the WiC arms; give held-out reward models for an independent judge)")
    expert_data: list[str] = list_option([], "one training-data spec per ensemble objective, in its order: adds the soups and "
                                         "mod arms, one DPO LoRA expert per objective (e.g. hh-helpful:train hh-harmless:train)")
    expert_eval_data: list[str] = list_option(HH_TEST, "held-out pairs per objective for the experts' implicit-reward table")
    expert_steps: Optional[int] = option(None, "DPO steps per expert (default: a WiC arm's SFT steps split evenly between the experts)")
    expert_learning_rate: float = option(3e-4, "AdamW learning rate of the experts' LoRA weights")
    expert_pairs: Optional[int] = option(None, "training pairs per objective for the experts (default: max_pairs, the WiC "
                                         "arms' pairs; DPO pairs are human data, not generated, so more of them costs no "
                                         "extra steps)")
    online_filters: list[str] = list_option(["ric"], "the online arms' filters (see train-wic --online_filter); each one beyond "
                                            "ric adds a Pro-WiC and a RiC-online arm named after it, on the same offline stages")
    ric_preferences: str = option("random", "RiC-online's preferences: random (Dirichlet(1)) | ric-goals (RiC's sample_goals)")
    overwrite: bool = option(False, "retrain and re-evaluate (default: reuse finished stages)")

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "eval_prompts_per_source", "grid_divisions", "eval_batch_size", "expert_steps", "expert_learning_rate",
                       "expert_pairs")
        check_one_of(self, "ric_preferences", ("random", "ric-goals"))
        if not self.online_filters or len(set(self.online_filters)) != len(self.online_filters) or \
                any(f not in ONLINE_FILTERS for f in self.online_filters):
            raise ConfigError(f"online_filters: expected distinct values of {', '.join(ONLINE_FILTERS)}, got {self.online_filters}")
        check_non_negative(self, "eval_temperature")
        if self.expert_data:
            check_same_length(self, "expert_data", "expert_eval_data")


@run_config
class RobustnessConfig(RunConfig):
    """`preforch robustness`: one objective's reward corrupted at increasing levels (rewards/corruption.py), the
    orchestrator retrained on each corrupted stack (its saved training settings, a new head on its frozen encoder),
    and the human-label accuracy of orchestrator, uniform and best fixed (re-chosen on validation) under each, with
    the weight each puts on the corrupted objective."""

    orchestrator: str = option("runs/mixed_intent_independent/orchestrator", "a trained orchestrator folder: its "
                               "train_metrics.json gives the ensemble, encoder, data and objective every retrain uses")
    objective: str = option("harmless", "the objective whose reward is corrupted")
    noise_levels: list[float] = list_option([0.0, 0.5, 1.0, 2.0, 4.0], "noise: standard deviations of the Gaussian noise, z units")
    length_levels: list[float] = list_option([0.0, 0.5, 1.0, 2.0], "length: bias per doubling of the reply's word count, z units")
    random_levels: list[float] = list_option([0.0, 0.25, 0.5, 0.75, 1.0], "random: share of the score replaced by a random "
                                             "function of the reply (1: all)")
    output_dir: str = option("runs/robustness", "robustness.json, report.md, robustness.png")

    def __post_init__(self):
        from preforch.rewards.corruption import Corruption

        for kind in ("noise", "length", "random"):
            for level in getattr(self, f"{kind}_levels"):
                Corruption(self.objective, kind, level)  # a level out of range fails here, before anything loads
