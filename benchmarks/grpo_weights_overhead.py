"""Cost of prompt-aware weights in RL: GRPO steps with the orchestrator's per-prompt weights (Pro-MORLHF)
vs one fixed vector (MORLHF), same policy, prompts, batch and seed.

    python benchmarks/grpo_weights_overhead.py --run runs/quickstart [--rounds 3] [--steps 6]

The arms are interleaved: each round runs Pro-MORLHF then MORLHF (alternating which goes first), so a change in
the machine's load hits both. Each run's first step is a warm-up and is not timed. Both use the same seed and a
negligible learning rate, so they sample the same tokens and the only difference is the weights column. The
ratio is median(Pro-MORLHF step) / median(MORLHF step) over all timed steps, reported with each round's ratio
(their range is the spread) and each arm's interquartile range; the orchestrator's one-time prediction is
reported separately. The target is a ratio <= 1.05. A 3-step ratio swung from 1.35 to 0.95 between runs on a
2-core CPU: time more steps than that.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from _common import save
from transformers import TrainerCallback

from preforch.alignment.config import PolicyConfig
from preforch.alignment.morlhf import train_policy


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)


def timed_run(args, method: str) -> tuple[list[float], float]:
    """Step times (s) after the first, and the setup time outside the steps, of one training run."""
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        cfg = PolicyConfig(method=method, policy=args.policy, ensemble=f"{args.run}/rewards",
                           orchestrator=f"{args.run}/orchestrator", max_prompts=64, output_dir=out,
                           max_steps=args.steps + 1, learning_rate=1e-12, per_device_train_batch_size=args.batch,
                           num_generations=args.num_generations, max_completion_length=args.max_completion_length,
                           save_steps=10_000, logging_steps=10_000)
        t = time.perf_counter()
        train_policy(cfg, callbacks=(timer,))
    return timer.times[1:], time.perf_counter() - t - sum(timer.times)


def quartiles(xs: list[float]) -> list[float]:
    q = statistics.quantiles(xs, n=4)
    return [q[0], q[2]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--policy", default="smollm2")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds, one run of each arm per round")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per run (after one warm-up step)")
    ap.add_argument("--num_generations", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8, help="completions per step")
    ap.add_argument("--max_completion_length", type=int, default=32)
    args = ap.parse_args()

    arms = ("pro-morlhf", "morlhf")
    times = {m: [] for m in arms}
    setup = {m: [] for m in arms}
    round_ratios = []
    for r in range(args.rounds):
        medians = {}
        for method in (arms if r % 2 == 0 else arms[::-1]):
            steps, prep = timed_run(args, method)
            times[method] += steps
            setup[method].append(prep)
            medians[method] = statistics.median(steps)
        round_ratios.append(medians["pro-morlhf"] / medians["morlhf"])
        print(f"round {r + 1}: ratio {round_ratios[-1]:.3f}", flush=True)
    save("grpo_weights_overhead", {
        "policy": args.policy, "rounds": args.rounds, "steps_timed_per_run": args.steps,
        "steps_timed_per_arm": len(times["morlhf"]), "completions_per_step": args.batch,
        "max_completion_length": args.max_completion_length,
        "step_s_pro_morlhf": statistics.median(times["pro-morlhf"]), "step_s_morlhf": statistics.median(times["morlhf"]),
        "step_s_iqr_pro_morlhf": quartiles(times["pro-morlhf"]), "step_s_iqr_morlhf": quartiles(times["morlhf"]),
        "ratio_pro_over_fixed": statistics.median(times["pro-morlhf"]) / statistics.median(times["morlhf"]),
        "ratio_per_round": round_ratios, "ratio_range": [min(round_ratios), max(round_ratios)],
        "setup_s_pro_morlhf": statistics.median(setup["pro-morlhf"]), "setup_s_morlhf": statistics.median(setup["morlhf"]),
        "step_s_all": times,
    })


if __name__ == "__main__":
    main()
