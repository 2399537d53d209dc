"""Cost of prompt-aware weights in RL: GRPO steps with the orchestrator's per-prompt weights (Pro-MORLHF)
vs one fixed vector (MORLHF), same policy, prompts, batch and seed, in one run.

    python benchmarks/grpo_weights_overhead.py --run runs/quickstart [--steps 4]

Both runs use the same seed and a negligible learning rate, so they sample the same tokens and the only
difference is the weights column; the orchestrator's one-time prediction over the prompt set is
reported separately. The target is a step-time ratio <= 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from _common import save
from transformers import TrainerCallback

from preforch.alignment.morlhf import train_policy
from preforch.config import PolicyConfig


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--policy", default="smollm2")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--num_generations", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8, help="completions per step")
    ap.add_argument("--max_completion_length", type=int, default=32)
    args = ap.parse_args()

    medians, prep = {}, {}
    for method in ("pro-morlhf", "morlhf"):
        timer = StepTimer()
        with tempfile.TemporaryDirectory() as out:
            cfg = PolicyConfig(method=method, policy=args.policy, ensemble=f"{args.run}/rewards",
                               orchestrator=f"{args.run}/orchestrator", max_prompts=64, output_dir=out,
                               max_steps=args.steps, learning_rate=1e-12, per_device_train_batch_size=args.batch,
                               num_generations=args.num_generations, max_completion_length=args.max_completion_length,
                               save_steps=10_000, logging_steps=10_000)
            t = time.perf_counter()
            train_policy(cfg, callbacks=(timer,))
            prep[method] = time.perf_counter() - t - sum(timer.times)
        medians[method] = statistics.median(timer.times[1:] or timer.times)  # first step warms up
    save("grpo_weights_overhead", {
        "policy": args.policy, "steps_timed": args.steps - 1, "completions_per_step": args.batch,
        "max_completion_length": args.max_completion_length,
        "step_s_pro_morlhf": medians["pro-morlhf"], "step_s_morlhf": medians["morlhf"],
        "ratio_pro_over_fixed": medians["pro-morlhf"] / medians["morlhf"],
        "setup_s_pro_morlhf": prep["pro-morlhf"], "setup_s_morlhf": prep["morlhf"],
    })


if __name__ == "__main__":
    main()
