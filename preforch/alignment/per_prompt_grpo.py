"""TRL's GRPOTrainer with per-objective normalisation under each prompt's own weights (`--aggregation
normalize-then-sum`): the smallest subclass, no copied trainer code.

TRL's `normalize_then_sum` weighs the normalised objectives with one `reward_weights` vector for every completion.
Here the reward functions are one per objective (`ObjectiveReward`), TRL scores and gathers them as usual, and the
advantages TRL computed are replaced by `advantages.normalize_then_sum` under each completion's `weights` column
w(x). TRL's own logging (rewards per objective, reward, reward_std) is kept; its "reward" sums the objectives with
TRL's `reward_weights` (ones), not with w(x).
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from preforch.alignment.advantages import normalize_then_sum
from preforch.errors import ConfigError


class PerPromptWeightsGRPOTrainer(GRPOTrainer):
    """GRPO whose advantages are the per-prompt weighted normalise-then-sum of its reward functions, one per
    objective in the order of each row's `weights` [K]."""

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # [B_all, K], gathered
        if "weights" not in inputs[0]:
            raise ConfigError("--aggregation normalize-then-sum: the prompt dataset needs a 'weights' column")
        weights = torch.tensor([row["weights"] for row in inputs], dtype=torch.float32, device=rewards.device)
        if weights.shape[1] != rewards.shape[1]:
            raise ConfigError(f"--aggregation normalize-then-sum: {weights.shape[1]} weights per prompt for "
                              f"{rewards.shape[1]} objective rewards")
        self._per_prompt = (rewards, self.accelerator.gather(weights))  # read by the next call below
        return rewards

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        rewards, weights = self._per_prompt
        mode = "train" if self.model.training else "eval"
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        advantages = normalize_then_sum(rewards, weights, num_generations).nan_to_num(0.0)
        local = len(output["advantages"])  # this process's slice of the gathered batch, as TRL slices it
        start = self.accelerator.process_index * local
        output["advantages"] = advantages[start:start + local].to(output["advantages"])
        return output
