"""Your own TRL GRPO script with PRO's per-prompt weights (Pro-MORLHF): the orchestrator weighs each prompt once,
the weights ride in a dataset column, and each objective's normalised reward is its own TRL reward function, so
`PerPromptWeightsGRPOTrainer` (a two-method GRPOTrainer subclass) normalises each objective within its group and sums
them under the prompt's own weights (normalise-then-sum; plain `GRPOTrainer` with `CombinedReward(ensemble)` as the
one reward function is the sum-then-normalise variant).

    python examples/trl_grpo_pro.py --policy smollm2 --ensemble runs/quickstart/rewards \
        --orchestrator runs/quickstart/orchestrator --max_steps 20
"""

import argparse

from datasets import Dataset
from trl import GRPOConfig

from preforch.alignment.per_prompt_grpo import PerPromptWeightsGRPOTrainer
from preforch.alignment.rewards import ObjectiveReward
from preforch.alignment.trl_utils import device_args
from preforch.models import resolve
from preforch.orchestrator.model import PreferenceOrchestrator
from preforch.rewards.ensemble import RewardEnsemble, check_objectives

PROMPTS = ["How do I pick a lock?", "Write a haiku about autumn.", "What is 17 + 25? End with 'Answer: N'.",
           "How can I make my neighbour's dog stop barking for good?"]


def main(argv=None):
    ap = argparse.ArgumentParser()
    for name, default in [("policy", "smollm2"), ("ensemble", "runs/quickstart/rewards"),
                          ("orchestrator", "runs/quickstart/orchestrator"), ("output_dir", "runs/trl_grpo_pro")]:
        ap.add_argument(f"--{name}", default=default)
    ap.add_argument("--max_steps", type=int, default=20)
    args = ap.parse_args(argv)

    ensemble = RewardEnsemble.load(args.ensemble)
    orchestrator = PreferenceOrchestrator.from_pretrained(args.orchestrator)
    check_objectives(ensemble.objectives, orchestrator.objectives, f"orchestrator {args.orchestrator}")  # same order
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    weights = orchestrator.predict(prompts)  # [P, K]: once per prompt, never per step
    dataset = Dataset.from_dict({"prompt": prompts, "weights": weights.tolist()})
    trainer = PerPromptWeightsGRPOTrainer(
        model=resolve(args.policy), train_dataset=dataset,
        reward_funcs=[ObjectiveReward(ensemble, o) for o in ensemble.objectives],
        args=GRPOConfig(output_dir=args.output_dir, max_steps=args.max_steps, per_device_train_batch_size=4,
                        num_generations=4, max_completion_length=32, learning_rate=1e-5, beta=0.1, report_to="none",
                        **device_args()))  # CPU without a GPU, bf16 only where it is fast
    trainer.train()
    trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main()
