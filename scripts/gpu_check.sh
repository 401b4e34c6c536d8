#!/usr/bin/env bash
# snappix GPU check in one command: the GPU-specific paths, each timed, and one summary table.
#
#   bash scripts/gpu_check.sh [--out DIR] [--dry_run]
#
# On a CUDA machine (about 8 minutes at most, every step under its own timeout):
#   1. train_bf16  benchmarks/bench_train.py --precision bf16: coded MAE ViT-S, SDPA versus explicit attention
#   2. train_fp16  the same in fp16 autocast (timing only: no loss scaler)
#   3. resume      torchrun (1 process, --standalone) of a tiny coded MAE on synthetic clips for 2 epochs,
#                  killed with SIGKILL (whole process group) during epoch 1 once an epoch-0 checkpoint
#                  exists, then rerun: the log must say "starting at epoch 1" and log.txt hold epochs [0, 1].
#                  At world size 1 snappix creates no process group, so nccl (gloo on CPU) is the
#                  backend it would use, not one that carries traffic here.
#   4. kcenter     benchmarks/bench_masking.py --device cuda --skip_saliency: dense k-center versus pairwise
#   5. mamba       benchmarks/bench_mamba.py --quick --skip_scaling: the VideoMamba scan backends
#                  (sequential, parallel, and the CUDA kernel when installed)
# Without CUDA (or with --dry_run) it prints "no CUDA device: CPU dry run at tiny sizes", runs the same steps
# at tiny sizes on the CPU (train_bf16 runs in fp32; train_fp16 is skipped: fp16 needs CUDA) and exits 0
# when every step that ran succeeded, 1 otherwise.
# Logs: DIR/logs/<step>.log; table: DIR/summary.md (default DIR: outputs/gpu_check in the repository).
set -uo pipefail
HERE=$(pwd)
cd "$(dirname "$0")/.."

OUT=outputs/gpu_check
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --dry_run) DRY=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$OUT" in /*) ;; *) OUT="$HERE/$OUT" ;; esac

source scripts/_venv.sh

if [ "$DRY" = 0 ] && ! python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  echo "no CUDA device: CPU dry run at tiny sizes"
  DRY=1
elif [ "$DRY" = 1 ]; then
  echo "--dry_run: CPU dry run at tiny sizes"
fi
rm -rf "$OUT/logs" "$OUT/resume" "$OUT/resume_data" "$OUT/steps.tsv" "$OUT/summary.md"  # this script's own files only
mkdir -p "$OUT/logs"
STEPS="$OUT/steps.tsv"
: > "$STEPS"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
export PYTHONUNBUFFERED=1

# step NAME TIMEOUT_S CMD...: run CMD with a timeout, log to logs/NAME.log, append "NAME status wall" to steps.tsv
step() {
  local name="$1" limit="$2"; shift 2
  local log="$OUT/logs/$name.log" t0 rc status
  echo "[gpu_check] $name ..."
  t0=$(date +%s%N)
  timeout --signal=KILL "$limit" "$@" > "$log" 2>&1
  rc=$?
  if [ -f "$OUT/first_run.pgid" ]; then  # step 3's first run (own process groups) outlived a timeout
    local first; first=$(cat "$OUT/first_run.pgid")
    kill -9 $(descendants "$first") "$first" 2>/dev/null; rm -f "$OUT/first_run.pgid"
  fi
  if [ "$rc" = 0 ]; then status=ok; elif [ "$rc" = 137 ] || [ "$rc" = 124 ]; then status="failed (timeout ${limit} s)"
  else status="failed (exit $rc)"; fi
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%s\t%s\t%d.%d\n' "$name" "$status" $((ms / 1000)) $((ms % 1000 / 100)) >> "$STEPS"
  echo "[gpu_check] $name: $status"
}
skip() { printf '%s\tskipped (%s)\t0\n' "$1" "$2" >> "$STEPS"; echo "[gpu_check] $1: skipped ($2)"; }

descendants() {  # every process below $1
  local c
  for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done
}

# resume_check: the kill-and-resume run of step 3 (called through `step`, so its output is the step's log)
resume_check() {
  local run="$OUT/resume" data="$OUT/resume_data" pid pgid
  python -m snappix.tools.make_synthetic "$data" --num_videos "$NV" --num_frames 16 --height 64 --width 84 \
    --seed 0 --workers 2 --no_progress || return 1
  # the list repeated up to LINES lines, so that epoch 1 lasts long enough (seconds) to be killed in its middle
  : > "$data/pretrain_long.csv"
  while [ "$(wc -l < "$data/pretrain_long.csv")" -lt "$LINES" ]; do
    cat "$data/pretrain.csv" >> "$data/pretrain_long.csv"
  done
  local cmd=(python -m torch.distributed.run --standalone --nproc_per_node 1 run_pretraining.py
    --model pretrain_coded_videomae_super_tiny_patch8_112 --coded_type naive --input_size 64 --num_frames 16
    --sampling_rate 1 --decoder_depth 1 --num_workers "$WORKERS" --no_progress --device "$DEVICE" --batch_size 2
    --epochs 2 --warmup_epochs 0 --lr 1e-3 --save_ckpt_freq 1 --precision "$PREC"
    --data_path "$data/pretrain_long.csv" --data_root "$data" --output_dir "$run")
  echo "== first run (to be killed during epoch 1): ${cmd[*]}"
  setsid "${cmd[@]}" &
  pid=$!
  echo "$pid" > "$OUT/first_run.pgid"
  for _ in $(seq 1 15000); do  # up to 300 s for checkpoint-0
    [ -f "$run/checkpoint-0.pth" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  pgid=$(ps -o pgid= -p "$pid" | tr -d ' ')
  if [ ! -f "$run/checkpoint-0.pth" ] || [ -z "$pgid" ]; then
    echo "resume: the first run ended or stalled before checkpoint-0 (or before the kill)"; kill -9 "$pid" 2>/dev/null
    return 1
  fi
  if [ "$pgid" != "$pid" ]; then
    echo "resume: torchrun is not its own process group ($pgid)"; kill -9 "$pid"; return 1
  fi
  # torchrun starts each worker in a session of its own: SIGKILL torchrun's process group and every
  # descendant's process group at once (a worker left alive would finish epoch 1 on its own)
  local groups=("$pgid") p
  for p in $(descendants "$pid"); do groups+=("$(ps -o pgid= -p "$p" | tr -d ' ')"); done
  groups=($(printf '%s\n' "${groups[@]}" | grep -v '^$' | sort -u))
  kill -9 -- $(printf -- '-%s ' "${groups[@]}")
  wait "$pid" 2>/dev/null
  rm -f "$OUT/first_run.pgid"
  echo "== killed process groups ${groups[*]} (SIGKILL) during epoch 1, after checkpoint-0; rerun"
  "${cmd[@]}" || return 1
  python -m snappix.tools.gpu_check_report --check_resume "$run" "$OUT/logs/resume.log"
}

export -f resume_check descendants
export OUT
if [ "$DRY" = 1 ]; then
  # one thread per process: torch threads plus loader workers oversubscribe small CPUs (epochs 8x slower)
  export DEVICE=cpu PREC=fp32 NV=16 LINES=64 WORKERS=1 OMP_NUM_THREADS=1
  TRAIN=(--device cpu --model pretrain_coded_videomae_super_tiny_patch8_112 --batch_size 2 --rounds 1 --steps 1
         --tiny --no_floor --no_memory)
  step train_bf16 300 python benchmarks/bench_train.py "${TRAIN[@]}" --precision fp32
  skip train_fp16 "no CUDA: fp16 autocast needs a CUDA device"
  step resume 420 bash -c resume_check
  step kcenter 120 python benchmarks/bench_masking.py --device cpu --tiny
  step mamba 180 python benchmarks/bench_mamba.py --device cpu --tiny
else
  export DEVICE=cuda PREC=bf16 NV=64 LINES=768 WORKERS=2
  TRAIN=(--device cuda --rounds 5 --steps 5 --warmup 3 --no_floor --no_memory)
  step train_bf16 75 python benchmarks/bench_train.py "${TRAIN[@]}" --precision bf16
  step train_fp16 75 python benchmarks/bench_train.py "${TRAIN[@]}" --precision fp16
  step resume 150 bash -c resume_check
  step kcenter 75 python benchmarks/bench_masking.py --device cuda --skip_saliency
  if python -c 'import snappix.models.mamba_mixer' 2>/dev/null; then
    step mamba 75 python benchmarks/bench_mamba.py --device cuda --quick --skip_scaling
  else
    skip mamba "snappix.models.mamba_mixer not present"
  fi
fi
python -m snappix.tools.gpu_check_report "$OUT" --dry_run "$DRY"
