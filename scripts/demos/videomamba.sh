#!/usr/bin/env bash
# VideoMamba demo on a CPU: a small VideoMamba next to a video ViT and a single frame, on the quickstart's
# synthetic motion-direction clips, in about ten minutes on 2 cores, no download needed.
#
#   bash scripts/demos/videomamba.sh
# Options: --out DIR (default outputs/demo_videomamba in the repository; taken relative to the folder you run
#          the script from), --data DIR (a finished quickstart data folder to reuse; default: the
#          quickstart's outputs/quickstart/data when it exists, else the clips are made here),
#          --epochs N (default 30, as the quickstart), --num_videos N (synthetic clips when they are made, default 480),
#          --fast (tiny settings for tests), --keep (reuse the finished stages of an earlier run).
#
# Stages: 1 data (python -m snappix.tools.make_synthetic, then preprocess_data.py to linear grey, 64 px) ->
# 2 run_finetuning.py for videomamba_super_tiny (grey, 16 frames, patches of 32 px in tubelets of 4 frames:
# 16 tokens), then a single frame (the quickstart's short-exposure model), beside 3 the quickstart's video ViT
# (16 frames, 64 tokens) with the same recipe and budget (two trainings at a time, one thread each; logs in
# OUT/logs) -> 4 multi-view test of each -> results table (OUT/results.md).
# Every model starts from scratch; the class is the direction of motion, so one frame stays near chance.
set -euo pipefail
HERE=$(pwd)
cd "$(dirname "$0")/../.."

OUT=""
DATA=""
EPOCHS=30
NUM_VIDEOS=480
FAST=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --num_videos) NUM_VIDEOS="$2"; shift 2 ;;
    --fast) FAST=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "videomamba demo: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$HERE" "$1" ;; esac; }
if [ -z "$OUT" ]; then OUT=outputs/demo_videomamba; else OUT=$(absolute "$OUT"); fi
if [ -n "$DATA" ]; then
  DATA=$(absolute "$DATA")
  [ -f "$DATA/classes.txt" ] || { echo "videomamba demo: --data $DATA has no classes.txt (a quickstart data folder)" >&2; exit 2; }
elif [ "$FAST" = 0 ] && [ -f outputs/quickstart/data/classes.txt ] && [ -f outputs/quickstart/data/train.csv ]; then
  DATA=$(pwd)/outputs/quickstart/data
fi

source scripts/_venv.sh

# Sizes: 16 frames of 64 x 64 (rendered at 64 x 84), batch 32, fp32 unless the CPU computes bf16 natively.
SIZE=64
BATCH=32
LR_VIDEO=1.2e-2     # base lr for a batch of 256 -> 1.5e-3 at batch 32: the quickstart's video-ViT lr
LR_FRAME=8e-3       # -> 1e-3: the quickstart's single-frame lr
LR_MAMBA=2.4e-2     # -> 3e-3 for VideoMamba (README, VideoMamba demo: what was tried)
WARMUP=3            # the quickstart's finetuning warmup
VIEWS=(--test_num_segment 2 --test_num_crop 3)
if [ "$FAST" = 1 ]; then
  EPOCHS=1; NUM_VIDEOS=32; BATCH=8; WARMUP=0
  VIEWS=(--test_num_segment 1 --test_num_crop 1)
fi
# The pure-PyTorch selective scan runs thousands of small steps; two OpenMP threads spend their time waiting for
# each other, so the demo runs two trainings side by side with one thread each (unless told otherwise).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

if [ "$KEEP" = 0 ] && [ -d "$OUT" ]; then
  echo "videomamba demo: $OUT exists; moving it to $OUT.old (pass --keep to reuse finished stages)"
  rm -rf "$OUT.old"; mv "$OUT" "$OUT.old"
fi
mkdir -p "$OUT"
TIMINGS="$OUT/timings.tsv"
START=$SECONDS
banner() { printf '\n== %s  [%ds]\n' "$1" "$((SECONDS - START))"; }

# ---------------------------------------------------------------------------------------------------
if [ -n "$DATA" ]; then
  banner "1. data: reusing $DATA"
  ROOT="$DATA"
else
  banner "1. synthetic dataset: $NUM_VIDEOS clips, 8 motion-direction classes, linear grey at $SIZE px"
  if [ ! -f "$OUT/raw/classes.txt" ]; then
    python -m snappix.tools.make_synthetic "$OUT/raw" --num_videos "$NUM_VIDEOS" --seed 0 --workers 2 \
      --height "$SIZE" --width 84 --no_progress
  fi
  python preprocess_data.py "$OUT/raw/videos" "$OUT/data/videos" --input_format .mp4 --cores 2 --short_side "$SIZE"
  for f in train val; do cp "$OUT/raw/$f.csv" "$OUT/data/$f.csv"; done
  cp "$OUT/raw/classes.txt" "$OUT/data/classes.txt"
  ROOT="$OUT/data"
fi
NB_CLASSES=$(grep -c . "$ROOT/classes.txt")
NUM_TRAIN=$(grep -c . "$ROOT/train.csv")
if [ "$NUM_TRAIN" -lt "$BATCH" ]; then BATCH=$NUM_TRAIN; fi

# finetune NAME DIR MODEL LR [extra flags]: one recipe and budget for every row (the quickstart's)
finetune() {
  local name="$1" dir="$2" model="$3" lr="$4"; shift 4
  if [ "$KEEP" = 1 ] && [ -f "$OUT/$dir/test/multiview_summary.json" ]; then
    echo "($name: kept from an earlier run)"; return
  fi
  local t0=$SECONDS
  python run_finetuning.py --model "$model" "$@" --data_set custom --nb_classes "$NB_CLASSES" \
    --data_path "$ROOT/train.csv" --val_path "$ROOT/val.csv" --test_path "$ROOT/val.csv" \
    --class_names "$ROOT/classes.txt" --data_root "$ROOT" --num_frames 16 --sampling_rate 1 \
    --input_size "$SIZE" --short_side_size "$SIZE" --batch_size "$BATCH" --num_workers 0 --cache_videos \
    --device cpu --precision auto --seed 0 --save_ckpt_freq 1000 \
    --epochs "$EPOCHS" --warmup_epochs "$WARMUP" --lr "$lr" --layer_decay 1.0 --weight_decay 0.05 \
    --mixup 0 --cutmix 0 --reprob 0 --aa none --smoothing 0 --flip off --drop_path 0 --init_scale 1.0 \
    --train_crop_scale 0.6 0.75 --train_crop_ratio 1 1 --eval_freq "$EPOCHS" --test_best "${VIEWS[@]}" \
    --output_dir "$OUT/$dir" --log_dir "$OUT/tensorboard/$dir" --no_progress
  printf '%s\t%s\n' "$name" "$((SECONDS - t0))" >> "$TIMINGS"
}
# --flip off: a horizontal flip turns E into W (changes the label); square crops keep directions and speeds;
# --eval_freq $EPOCHS validates once, after the last epoch, so checkpoint-best is the final model.

# Two trainings at a time, one thread each (the machine's two cores): the pure-PyTorch selective scan runs many
# small steps that gain little from a second thread. Each run's output goes to OUT/logs/<dir>.log.
mkdir -p "$OUT/logs"
side_by_side_failed() { echo "videomamba demo: a training failed; see $OUT/logs/" >&2; tail -n 20 "$OUT"/logs/*.log >&2; exit 1; }
banner "2-3. VideoMamba (videomamba_super_tiny: width 96, depth 4, grey, 16 frames, 32 px patches in tubelets of 4) \
then a single frame, beside the video ViT (16 frames), with the same recipe and budget; logs in $OUT/logs"
( finetune "VideoMamba (16 frames)" ft_videomamba videomamba_super_tiny "$LR_MAMBA" > "$OUT/logs/ft_videomamba.log" 2>&1
  echo "   VideoMamba done [$((SECONDS - START))s]"
  finetune "single frame (short exposure)" ft_short coded_vit_super_tiny_patch8_112 "$LR_FRAME" --coded_type short \
    > "$OUT/logs/ft_short.log" 2>&1
  echo "   single frame done [$((SECONDS - START))s]" ) &
FIRST=$!
( finetune "video ViT (16 frames)" ft_video video_vit_super_tiny_patch16_112 "$LR_VIDEO" > "$OUT/logs/ft_video.log" 2>&1
  echo "   video ViT done [$((SECONDS - START))s]" ) &
SECOND=$!
wait "$SECOND" || { kill "$FIRST" 2>/dev/null || true; side_by_side_failed; }
wait "$FIRST" || side_by_side_failed

banner "4. results (multi-view test of each final model on the validation clips)"
python -m snappix.tools.demo_report --title "VideoMamba demo" --timings "$TIMINGS" \
  --run "VideoMamba (16 frames)=$OUT/ft_videomamba" --run "video ViT (16 frames)=$OUT/ft_video" \
  --run "single frame (short exposure)=$OUT/ft_short" --baseline "single frame (short exposure)" --margin 15 \
  --notes "$EPOCHS epochs of batch $BATCH from scratch; top-1 on the validation clips (chance 12.5 %); train time \
is the wall time of run_finetuning.py (training, validation and the multi-view test; two runs at a time, one thread \
each); GFLOPs count matmuls and \
convolutions only (the selective scan's element-wise recurrence is not counted). Whole demo: \
$(( (SECONDS - START) / 60 )) min $(( (SECONDS - START) % 60 )) s after the environment set-up." \
  --out "$OUT/results.md"
