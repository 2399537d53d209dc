#!/usr/bin/env bash
# A small CPU run of each training signal that keeps per-prompt weights, on the mixed-intent stack
# (first: preforch build-benchmark --config preforch/recipes/mixed_intent.yaml): Pro-MORLHF for 12 steps under
# normalise-then-sum GRPO, reward-ranked DPO and online DPO. One thread each, niced, so it can share a machine.
# Logs: runs/signals/<name>/log.jsonl; docs/results.md reads them.
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
COMMON="--method pro-morlhf --policy smollm2 --ensemble runs/mixed_intent/rewards --orchestrator runs/mixed_intent/orchestrator
 --train_data hh-helpful:train hh-harmless:train arithmetic-smollm2:train --max_prompts 16 --max_steps 12 --use_lora true
 --learning_rate 5e-4 --num_generations 4 --max_completion_length 48 --beta 0.1 --save_steps 100 --seed 0"
for run in "nts --algorithm grpo --aggregation normalize-then-sum --per_device_train_batch_size 8" \
           "ranked --algorithm ranked-dpo --per_device_train_batch_size 4" \
           "online --algorithm online-dpo --per_device_train_batch_size 4"; do
  set -- $run; name=$1; shift
  start=$(date +%s)
  nice -n 15 .venv/bin/preforch train-policy $COMMON "$@" --output_dir runs/signals/$name > runs/signals/$name.log 2>&1
  echo "$name rc=$? wall_s=$(( $(date +%s) - start ))" >> runs/signals/done.txt
done
