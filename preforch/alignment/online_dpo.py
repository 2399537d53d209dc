"""`train-policy --algorithm online-dpo`: TRL's online DPO (Guo et al. 2024, "Direct Language Model Alignment from
Online AI Feedback"), judged by the method's reward: every step samples two completions per prompt from the current
policy, and the one with the higher w(x) . r~ is chosen (a tie chooses the first; TRL keeps every pair).

TRL 1.16's `OnlineDPOTrainer.training_step` hands every dataset column but `prompt` to reward functions, repeated
for the two completions (`inputs[key] * 2`, as it repeats the prompts), and its collator passes non-tensor columns
through as lists, so the `weights` column reaches `CombinedReward` as under GRPO; no hook is needed.
"""

from __future__ import annotations

from preforch.alignment.algorithms import TrainingAlgorithm


class OnlineDpo(TrainingAlgorithm):
    """trl.experimental.online_dpo's OnlineDPOTrainer with the method's reward as its one reward function."""

    config_class = "trl.experimental.online_dpo:OnlineDPOConfig"

    @classmethod
    def config_fields(cls, cfg) -> dict:
        return dict(max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature, beta=cfg.beta,
                    use_vllm=cfg.use_vllm)

    @classmethod
    def trainer(cls, cfg, model, setup, args, tokenizer, peft_config, callbacks):
        from trl.experimental.online_dpo import OnlineDPOTrainer

        return OnlineDPOTrainer(model=model, reward_funcs=[setup.reward], args=args, train_dataset=setup.dataset,
                                processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
