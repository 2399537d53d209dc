#!/usr/bin/env bash
# The GPU runs of docs/results.md ("On one H200"), one part per argument, parts in parallel:
#   bash scripts/gpu_runs.sh rm mahalo mahalo_baselines orchestrator
#   bash scripts/gpu_runs.sh mixed_benchmark; bash scripts/gpu_runs.sh mixed_rl; bash scripts/gpu_runs.sh mixed_rl_eval
#   bash scripts/gpu_runs.sh headline_benchmark; bash scripts/gpu_runs.sh headline_train; bash scripts/gpu_runs.sh headline_eval
#   rm            reward models on a SmolLM2-135M backbone (pooling x learning rate), trained without the
#                 orchestrator's validation slice as the quickstart's MiniLM ones are
#   mahalo        MAHALO on every bundled HH training pair and arithmetic pairs sampled from 1,800 problems (1,500
#                 held out): trained trunk (published), the NLL term on arithmetic only, a frozen trunk with head
#                 adapters (the CPU recipe)
#   mahalo_baselines  the baselines at equal compute: one pooled head, each objective alone; they read the
#                 arithmetic pairs the mahalo part samples (run both at once), or ARITH_DATA's
#   orchestrator  the paper's fine-tuned encoder (--train_encoder true, 3 epochs, lr 1e-5) vs the frozen-encoder
#                 default, both objectives, seeds 0-2, on ENSEMBLE's scores
#   mixed_benchmark  the mixed-intent benchmark's reward stack (build-benchmark, preforch/recipes/mixed_intent.yaml)
#   mixed_rl      its rl-compare arms at a GPU budget (MIXED_STEPS steps of 32 completions, 8 per prompt, bf16), all
#                 six trained at once on the one GPU (--train_only), after mixed_benchmark
#   mixed_rl_eval  every arm's checkpoints judged and the report written (the same rl-compare without --train_only)
#   headline_benchmark  the headline test's stack: build-benchmark, preforch/recipes/mixed_intent_independent.yaml
#                 (an independent SmolLM2 judge on the judge half of the HH test pairs)
#   headline_train  every arm of preforch/recipes/headline_mixed_intent.yaml under three training signals (ranked-dpo,
#                 normalise-then-sum GRPO, GRPO as TRL does it), each arm and training seed (0, 1) its own process
#                 on the one GPU (--train_only), HEADLINE_STEPS steps (default 48) of 16, 128 prompts per source
#   headline_eval  every final policy judged on the same 600 held-out prompts, the statistics and the report (the
#                 same `preforch headline` without --train_only), into RUNS/headline: report.md, headline.json,
#                 headline.png, replies.jsonl.gz
# SEEDS: the orchestrator seeds (default "0 1 2"). PY: a python that imports preforch (default .venv/bin/python).
# ARITH_DATA: a folder with arithmetic_train.jsonl and arithmetic_eval.jsonl to use instead of sampling them (e.g. a
# previous run's RUNS/mahalo/data).
# Measured on one H200 with rm, orchestrator and both MAHALO parts at once (docs/results.md): rm ~1.5 min,
# orchestrator ~1.3 min, MAHALO over 10 min (arithmetic sampling ~2 min, then seven runs sharing the GPU at
# ~1.15 s per trained-trunk step). With a 10-minute limit per call, run `mahalo` alone (with ARITH_DATA, no
# sampling), then `mahalo_baselines`.
# Runs go under RUNS (default runs/gpu), logs under RUNS/logs, each command's wall seconds in RUNS/times.tsv.
# SMALL=1 runs the same commands at smoke size (minutes on a CPU). PREFORCH: the CLI (default .venv/bin/preforch;
# `python -m preforch` from a source checkout).
set -uo pipefail
cd "$(dirname "$0")/.."
P=${PREFORCH:-.venv/bin/preforch}
PY=${PY:-.venv/bin/python}
R=${RUNS:-runs/gpu}
ENSEMBLE=${ENSEMBLE:-runs/quickstart/rewards}
SMALL=${SMALL:-0}
mkdir -p "$R/logs"

timed() {  # timed NAME COMMAND...: run, log to RUNS/logs/NAME.log, append "NAME rc seconds" to RUNS/times.tsv
  local name=$1 t0 rc ms
  shift
  t0=$(date +%s%N)
  "$@" >"$R/logs/$name.log" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%s\t%s\t%d.%03d\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) >>"$R/times.tsv"
}

if [ "$SMALL" = 1 ]; then
  RM_CAP="--max_train_pairs 16 --max_eval_pairs 16"
  MAHALO_CAP="--max_train_pairs 32 --max_eval_pairs 32 --max_steps 3 --arithmetic_max_new_tokens 32"
  ORCH_CAP="--max_train_pairs 40 --max_eval_pairs 20"
  MIXED_CAP="--max_train_pairs 16 --max_eval_pairs 8" RL_CAP="--max_steps 2 --save_steps 1 --eval_prompts_per_source 2"
  HEADLINE_CAP="--max_steps 2 --max_prompts 4 --eval_prompts_per_source 2"
else
  RM_CAP="" MAHALO_CAP="--max_train_pairs 1800 --max_eval_pairs 1500 --max_steps 300" ORCH_CAP="" MIXED_CAP=""
  RL_CAP="--max_steps ${MIXED_STEPS:-200} --save_steps 50 --per_device_train_batch_size 32 --num_generations 8"
  HEADLINE_CAP="--max_steps ${HEADLINE_STEPS:-48} --max_prompts 128 --per_device_train_batch_size 16"
fi
MIXED="$R/mixed_intent"
RL_MIXED="--config preforch/recipes/rl_compare_mixed_intent.yaml --ensemble $MIXED/rewards --orchestrator $MIXED/orchestrator
          --judge $MIXED/judge/rewards --output_dir $R/rl_compare_mixed_intent $RL_CAP"

INDEPENDENT="$R/mixed_intent_independent"
HEADLINE="--config preforch/recipes/headline_mixed_intent.yaml --ensemble $INDEPENDENT/rewards
          --orchestrator $INDEPENDENT/orchestrator --judge $INDEPENDENT/judge/rewards --output_dir $R/headline $HEADLINE_CAP"
HEADLINE_ARMS="pro-morlhf@ranked-dpo morlhf:best-fixed@ranked-dpo morlhf:uniform@ranked-dpo
               pro-morlhf:temperature=0.2@ranked-dpo pro-morlhf@grpo/normalize-then-sum
               morlhf:best-fixed@grpo/normalize-then-sum morlhf:uniform@grpo/normalize-then-sum pro-morlhf@grpo
               morlhf:best-fixed@grpo morlhf:uniform@grpo"

headline_train_part() {
  local arm seed
  for arm in $HEADLINE_ARMS; do
    for seed in 0 1; do
      timed "headline_${arm//[:@\/=]/_}_$seed" $P headline $HEADLINE --methods "$arm" --seeds "$seed" --train_only true &
    done
  done
  wait
}

rm_part() {
  for pooling in last mean; do
    for lr in 1e-5 3e-5; do
      timed "rm_${pooling}_$lr" $P train-rm --base_model smollm2 --pooling "$pooling" --learning_rate "$lr" \
        --holdout_validation 0.1 --output_dir "$R/rm_smollm2_${pooling}_$lr" $RM_CAP &
    done
  done
  wait
}

mahalo_common() {  # the options every MAHALO run shares, and where the arithmetic pairs are
  common="--batch_size 24 --head_learning_rate 5e-4 --sft_coefficient 1 --max_prompt_tokens 64 --max_reply_tokens 48
          --save_steps 100000 --arithmetic_batch_size 64 $MAHALO_CAP"
  trunk="--learning_rate 5e-6" d=${ARITH_DATA:-$R/mahalo/data}
  pairs="--train_data hh-helpful:train hh-harmless:train $d/arithmetic_train.jsonl
         --eval_data hh-helpful:test hh-harmless:test $d/arithmetic_eval.jsonl"
}

mahalo_part() {
  local common trunk d pairs
  mahalo_common
  if [ -n "${ARITH_DATA:-}" ]; then
    timed mahalo $P train-mahalo $common $trunk $pairs --output_dir "$R/mahalo" &
  else  # the main run samples the arithmetic pairs; every other run reads them once they are written
    timed mahalo $P train-mahalo $common $trunk --output_dir "$R/mahalo" &
    while [ ! -f "$d/arithmetic_eval.jsonl" ]; do
      kill -0 $! 2>/dev/null || { echo "mahalo failed before writing its arithmetic pairs" >&2; wait; return 1; }
      sleep 5
    done
  fi
  timed mahalo_nll_arith $P train-mahalo $common $trunk $pairs --sft_objectives arithmetic \
    --output_dir "$R/mahalo_nll_arith" &
  timed mahalo_frozen $P train-mahalo $common $pairs --train_trunk false --head_adapter_rank 64 \
    --output_dir "$R/mahalo_frozen" &
  wait
}

mahalo_baselines_part() {
  local common trunk d pairs waited=0
  mahalo_common
  while [ ! -f "$d/arithmetic_eval.jsonl" ]; do  # written by the mahalo part's sampling run
    [ "$SAMPLING" = 1 ] && [ $waited -lt 1800 ] || { echo "no $d/arithmetic_eval.jsonl: run the mahalo part too, or set ARITH_DATA" >&2; return 1; }
    sleep 5
    waited=$((waited + 5))
  done
  timed mahalo_pooled $P train-mahalo $common $trunk $pairs --pool true --output_dir "$R/mahalo_pooled" &
  for alone in "helpful hh-helpful:train hh-helpful:test" "harmless hh-harmless:train hh-harmless:test" \
               "arithmetic $d/arithmetic_train.jsonl $d/arithmetic_eval.jsonl"; do
    set -- $alone  # objective, its training pairs, its held-out pairs
    timed "mahalo_$1" $P train-mahalo $common $trunk --objectives "$1" --train_data "$2" --eval_data "$3" \
      --output_dir "$R/mahalo_$1" &
  done
  wait
}

orchestrator_part() {
  local data="--ensemble $ENSEMBLE --encoder reward-model --positive_source hh-harmless $ORCH_CAP" examples
  mapfile -t examples < <($PY -c "from preforch.pipelines.quickstart import EXAMPLE_PROMPTS as p; print(*p, sep='\n')")
  [ ${#examples[@]} -gt 0 ] || { echo "PY=$PY could not read the example prompts" >&2; return 1; }
  for seed in ${SEEDS:-0 1 2}; do
    for objective in bradley-terry kl; do
      for encoder in frozen finetuned; do
        local recipe=preforch/recipes/orchestrator_hh.yaml out="$R/orch_${encoder}_${objective}_$seed"
        [ $encoder = finetuned ] && recipe=preforch/recipes/orchestrator_finetune_paper.yaml
        { timed "orch_${encoder}_${objective}_$seed" $P train-orchestrator --config $recipe $data --objective "$objective" \
            --seed "$seed" --output_dir "$out"
          $P weights --orchestrator "$out" --json true --prompt "${examples[@]}" >"$out/example_weights.json"; } &
      done
    done
  done
  wait
}

mixed_rl_part() {
  local arm
  for arm in pro-morlhf morlhf:uniform morlhf:best-fixed single-reward:arithmetic single-reward:harmless \
             single-reward:helpful; do
    timed "rl_${arm//:/_}" $P rl-compare $RL_MIXED --methods "$arm" --train_only true &
  done
  wait
}

SAMPLING=0  # whether a mahalo part of this call samples the arithmetic pairs the baselines read
[[ " $* " == *" mahalo "* && -z "${ARITH_DATA:-}" ]] && SAMPLING=1
for part in "$@"; do
  case $part in
    rm) rm_part & ;;
    mahalo) mahalo_part & ;;
    mahalo_baselines) mahalo_baselines_part & ;;
    orchestrator) orchestrator_part & ;;
    mixed_benchmark) timed mixed_benchmark $P build-benchmark --config preforch/recipes/mixed_intent.yaml \
                       --output_dir "$MIXED" $MIXED_CAP & ;;
    mixed_rl) mixed_rl_part & ;;
    mixed_rl_eval) timed mixed_rl_eval $P rl-compare $RL_MIXED & ;;
    headline_benchmark) timed headline_benchmark $P build-benchmark --config preforch/recipes/mixed_intent_independent.yaml \
                          --output_dir "$INDEPENDENT" $MIXED_CAP & ;;
    headline_train) headline_train_part & ;;
    headline_eval) timed headline_eval $P headline $HEADLINE --methods $HEADLINE_ARMS & ;;
    *) echo "unknown part $part (rm, mahalo, mahalo_baselines, orchestrator, mixed_benchmark, mixed_rl, mixed_rl_eval," \
            "headline_benchmark, headline_train, headline_eval)" >&2
       exit 2 ;;
  esac
done
wait
