"""The one table of `train-policy` methods: name -> "module:Class", imported when used (like serving/policies/kinds.py's
KINDS), so naming the methods (the `--method` check, the CLI's help) loads none of them. A new RL method is one
module and one row here (docs/design.md, "Adding a training method"); its class subclasses `TrainingMethod`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

from preforch.tables import check_row, load_row

METHODS: dict[str, str] = {
    "pro-morlhf": "preforch.alignment.morlhf:ProMorlhf",
    "morlhf": "preforch.alignment.morlhf:Morlhf",
    "single-reward": "preforch.alignment.morlhf:SingleReward",
    "moslim": "preforch.alignment.moslim:Moslim",
}


def check_method(name: str, where: str) -> str:
    """`name` if it is a registered method, else a `ConfigError` starting with `where` that lists them."""
    return check_row(METHODS, name, where)


def method_class(name: str, where: str = "method") -> type["TrainingMethod"]:
    """The class implementing method `name` (see `check_method` for the error)."""
    return load_row(METHODS, name, where)


@dataclass
class PolicySetup:
    """What a method hands `train_policy`: the RL data and reward, and what the model card says of them."""

    dataset: Any  # datasets.Dataset: a `prompt` column plus whatever columns `reward` reads
    reward: Callable  # a TRL reward function
    objectives: list[str]  # the model card's objectives
    rewarded_by: str  # model card: "rewarded by <this>", e.g. "fixed weights uniform (MORLHF) over the scores of X"
    extra_json: Optional[dict] = None  # file name -> JSON saved beside the policy (e.g. moslim.json, its serving kind)
    # one TRL reward function per objective (None where one does not apply), in the order of the `weights` column:
    # what --aggregation normalize-then-sum normalises; None for a method that rewards through `reward` only
    objective_rewards: Optional[list[Callable]] = None


class TrainingMethod:
    """What a row's class declares; everything else of `train-policy` (trainer, logging, saving) is shared. The
    classes are not instantiated: `train_policy` calls `setup` with the run's `PolicyConfig`."""

    # rl-compare: the form of the setting an arm `<name>:<setting>` takes (e.g. "<objective>"), None: it takes none
    arm_setting: ClassVar[Optional[str]] = None
    # why rl-compare cannot train this method (it judges every arm on untagged prompts under the ensemble's
    # weights), None: it can, and then the class also has `weights` (alignment/morlhf.py's `WeightedMethod`)
    not_in_rl_compare: ClassVar[Optional[str]] = None
    # rl-compare: every other arm is compared, paired, with each arm of this method (MORLHF: the fixed-weight baseline)
    rl_compare_baseline: ClassVar[bool] = False

    @classmethod
    def setup(cls, cfg, tokenizer) -> PolicySetup:
        """The prompt dataset and reward of a run; fails on bad settings before the policy model loads."""
        raise NotImplementedError

    @classmethod
    def arm_config(cls, cfg, setting: str) -> dict:
        """rl-compare: the PolicyConfig fields the arm `<name>:<setting>` sets (only called when `arm_setting`)."""
        raise NotImplementedError
