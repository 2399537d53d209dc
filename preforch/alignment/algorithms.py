"""The one table of `train-policy --algorithm`s: the training signal, i.e. the TRL trainer a method's weights and
reward feed. A method (alignment/methods.py) says how each prompt is weighted and rewarded; an algorithm says how
that reward becomes an update. They combine freely, so Pro-MORLHF, MORLHF and single-reward each run under every
algorithm, and a new signal is one module and one row here. Rows are imported when used (TRL loads then).

- grpo: TRL GRPOTrainer. `--aggregation sum-then-normalize` (TRL's default): advantage (R - mean_g R) / std_g R of
  the combined reward R = w(x) . r~; `normalize-then-sum`: each objective normalised within its group first, summed
  with the prompt's own w(x) (alignment/advantages.py), which keeps w's magnitude.
- rloo: TRL RLOOTrainer, the combined reward with a leave-one-out baseline (no division by the group's std).
- ranked-dpo: reward-ranked pairs: N candidates per prompt sampled once from the start, chosen / rejected the best
  and worst under each arm's w(x) . r~, TRL's DPOTrainer (alignment/ranked_dpo.py).
- online-dpo: TRL's online DPO trainer with the combined reward as its reward function (alignment/online_dpo.py).
- modpo: MODPO (Zhou et al. 2023): the same candidates as ranked-dpo, each pair labelled by one objective k, DPO with
  the other objectives' weighted rewards as margin, scaled by 1 / w_k; under `pro-morlhf` it is Pro-MODPO
  (alignment/modpo.py).
"""

from __future__ import annotations

from typing import ClassVar

from preforch.errors import ConfigError
from preforch.tables import load_attr, load_row

ALGORITHMS: dict[str, str] = {
    "grpo": "preforch.alignment.algorithms:Grpo",
    "rloo": "preforch.alignment.algorithms:Rloo",
    "ranked-dpo": "preforch.alignment.ranked_dpo:RankedDpo",
    "online-dpo": "preforch.alignment.online_dpo:OnlineDpo",
    "modpo": "preforch.alignment.modpo:Modpo",
}
SUM_THEN_NORMALIZE, NORMALIZE_THEN_SUM = "sum-then-normalize", "normalize-then-sum"
AGGREGATIONS = (SUM_THEN_NORMALIZE, NORMALIZE_THEN_SUM)


def algorithm_class(name: str, where: str = "algorithm") -> type["TrainingAlgorithm"]:
    """The class of algorithm `name`; a `ConfigError` starting with `where` that lists them for any other name."""
    return load_row(ALGORITHMS, name, where)


class TrainingAlgorithm:
    """What a row declares; `train_policy` builds the TRL config from `config_class` (with the run's shared settings,
    `config_fields` and the user's `trl:` block on top) and trains what `trainer` returns. Not instantiated."""

    config_class: ClassVar[str]  # "module:Class" of the TRL config
    aggregations: ClassVar[tuple[str, ...]] = (SUM_THEN_NORMALIZE,)  # the --aggregation values it takes
    samples_groups: ClassVar[bool] = False  # a step's batch is whole groups of num_generations completions

    @classmethod
    def config_fields(cls, cfg) -> dict:
        """This algorithm's own TRL config fields from the run's `PolicyConfig`."""
        raise NotImplementedError

    @classmethod
    def trainer(cls, cfg, model: str, setup, args, tokenizer, peft_config, callbacks: list):
        """The TRL trainer of `model` (a resolved path or hub id) for `setup` (a method's `PolicySetup`) under TRL
        config `args`."""
        raise NotImplementedError


class Rloo(TrainingAlgorithm):
    """TRL's RLOOTrainer on the combined reward; also the base of GRPO, which samples groups the same way."""

    config_class = "trl:RLOOConfig"
    trainer_class = "trl:RLOOTrainer"
    samples_groups = True

    @classmethod
    def config_fields(cls, cfg) -> dict:
        return dict(num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
                    temperature=cfg.temperature, beta=cfg.beta, use_vllm=cfg.use_vllm)

    @classmethod
    def trainer(cls, cfg, model, setup, args, tokenizer, peft_config, callbacks):
        return load_attr(cls.trainer_class)(model=model, reward_funcs=[setup.reward], args=args,
                                            train_dataset=setup.dataset, processing_class=tokenizer,
                                            peft_config=peft_config, callbacks=callbacks)


class Grpo(Rloo):
    config_class = "trl:GRPOConfig"
    trainer_class = "trl:GRPOTrainer"
    aggregations = AGGREGATIONS

    @classmethod
    def config_fields(cls, cfg) -> dict:
        fields = super().config_fields(cfg)
        if cfg.aggregation == NORMALIZE_THEN_SUM:
            fields["multi_objective_aggregation"] = "normalize_then_sum"
        return fields

    @classmethod
    def trainer(cls, cfg, model, setup, args, tokenizer, peft_config, callbacks):
        if cfg.aggregation != NORMALIZE_THEN_SUM:
            return super().trainer(cfg, model, setup, args, tokenizer, peft_config, callbacks)
        if setup.objective_rewards is None:
            raise ConfigError(f"--aggregation {NORMALIZE_THEN_SUM}: method {cfg.method!r} rewards through one function, "
                              "with no per-objective rewards to normalise")
        from preforch.alignment.per_prompt_grpo import PerPromptWeightsGRPOTrainer

        return PerPromptWeightsGRPOTrainer(model=model, reward_funcs=setup.objective_rewards, args=args,
                                           train_dataset=setup.dataset, processing_class=tokenizer,
                                           peft_config=peft_config, callbacks=callbacks)
