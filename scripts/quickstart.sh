#!/usr/bin/env bash
# snappix quickstart: SnapPix's whole pipeline on a CPU in minutes, no download needed.
#
#   bash scripts/quickstart.sh                            # embedded synthetic dataset (8 motion directions)
#   bash scripts/quickstart.sh --data path/to/your/videos # your own videos (label = sub-folder name, or
#                                                         # one class per video with a temporal split)
# Options: --out DIR (where every stage writes; default outputs/quickstart[_data] in the repository;
#          DIR and --data are taken relative to the folder you run the script from),
#          --epochs N (finetuning epochs, default 30),
#          --pretrain_epochs N (default 4), --num_videos N (synthetic clips, default 480), --mae_init (also
#          finetune the coded ViT from the coded MAE: one more row, about 2.5 more minutes), --fast (tiny
#          settings for tests: 2 epochs, few clips), --keep (reuse finished stages of an earlier run).
#
# Sized for a 2-core laptop CPU without native bf16 (fp32; --precision auto picks bf16 only where the
# CPU or GPU computes it natively): 16 frames of 64 x 64 pixels, about 12 minutes in all.
# Stages: 1 data -> 2 preprocess_data.py -> 3 run_decorrelation_training.py -> 4 run_pretraining.py
# (coded MAE with the learned pattern) -> 5 run_finetuning.py for the coded ViT -> 6 the same finetuning
# for the single-frame (short), long-exposure and full-video ViT baselines -> 7 multi-view evaluation of
# each -> results table (outputs/.../results.md). Every model in the table starts from scratch with the
# same recipe; a few dozen MAE steps make a worse start than random weights at this budget (README).
set -euo pipefail
HERE=$(pwd)
cd "$(dirname "$0")/.."

DATA=""
OUT=""
EPOCHS=30
PT_EPOCHS=4
NUM_VIDEOS=480
FAST=0
KEEP=0
MAE_INIT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --pretrain_epochs) PT_EPOCHS="$2"; shift 2 ;;
    --num_videos) NUM_VIDEOS="$2"; shift 2 ;;
    --fast) FAST=1; shift ;;
    --keep) KEEP=1; shift ;;
    --mae_init) MAE_INIT=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "quickstart: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
# paths the user typed are relative to where they ran the script, not to the repository
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$HERE" "$1" ;; esac; }
if [ -z "$OUT" ]; then
  if [ -z "$DATA" ]; then OUT=outputs/quickstart; else OUT=outputs/quickstart_data; fi
else
  OUT=$(absolute "$OUT")
fi
if [ -n "$DATA" ]; then
  DATA=$(absolute "$DATA")
  if [ ! -d "$DATA" ]; then echo "quickstart: --data $DATA is not a folder" >&2; exit 2; fi
fi

source scripts/_venv.sh

# CPU-sized settings: super-tiny models, 16 frames of 64 x 64 (frames rendered at 64 x 84); batch 32;
# fp32 unless the machine computes bf16 natively (--precision auto)
SIZE=64
BATCH=32
FT_LR=8e-3            # base lr for a batch of 256 -> 1e-3 at batch 32 (coded, short, long)
FT_LR_VIDEO=1.2e-2    # -> 1.5e-3 for the video ViT: the better of 1e-3 / 1.5e-3 / 2e-3 for each model (README)
PT_LR=1.5e-2
PT_WARMUP=1
FT_WARMUP=3
VIEWS=(--test_num_segment 2 --test_num_crop 3)
DECOR=(--epochs 2 --moment_steps 100 --num_sample 2 --refine_max_flips 500)
if [ "$FAST" = 1 ]; then
  EPOCHS=2; PT_EPOCHS=1; NUM_VIDEOS=32; BATCH=8; PT_WARMUP=0; FT_WARMUP=1
  VIEWS=(--test_num_segment 1 --test_num_crop 1)
  DECOR=(--epochs 1 --moment_steps 20 --num_sample 1 --refine_max_flips 20)
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"

if [ "$KEEP" = 0 ] && [ -d "$OUT" ]; then
  echo "quickstart: $OUT exists; moving it to $OUT.old (pass --keep to reuse finished stages)"
  rm -rf "$OUT.old"; mv "$OUT" "$OUT.old"
fi
mkdir -p "$OUT"
TIMINGS="$OUT/timings.tsv"
START=$SECONDS

# time_stage NAME CMD...: run a stage, append its wall time to timings.tsv
time_stage() {
  local name="$1"; shift
  local t0=$SECONDS
  "$@"
  printf '%s\t%s\n' "$name" "$((SECONDS - t0))" >> "$TIMINGS"
}
banner() { printf '\n== %s  [%ds]\n' "$1" "$((SECONDS - START))"; }

# ---------------------------------------------------------------------------------------------------
if [ -z "$DATA" ]; then
  banner "1. synthetic dataset: $NUM_VIDEOS clips, 8 motion-direction classes (snappix.tools.make_synthetic)"
  if [ ! -f "$OUT/raw/classes.txt" ]; then
    python -m snappix.tools.make_synthetic "$OUT/raw" --num_videos "$NUM_VIDEOS" --seed 0 --workers 2 \
      --height "$SIZE" --width 84
  fi
  SAMPLING_RATE=1
  banner "2. SnapPix preprocessing: linear grey, short side $SIZE (preprocess_data.py)"
  python preprocess_data.py "$OUT/raw/videos" "$OUT/data/videos" --input_format .mp4 --cores 2 --short_side "$SIZE"
  for f in train val pretrain pretrain_val; do cp "$OUT/raw/$f.csv" "$OUT/data/$f.csv"; done
  cp "$OUT/raw/classes.txt" "$OUT/data/classes.txt"
else
  SAMPLING_RATE=2
  banner "1. your videos: $DATA"
  banner "2. SnapPix preprocessing: linear grey, short side $SIZE (preprocess_data.py)"
  python preprocess_data.py "$DATA" "$OUT/preprocessed" --input_format .mp4,.avi,.webm,.mkv,.mov --cores 2 \
    --short_side "$SIZE"
  python -m snappix.tools.quickstart_lists "$OUT/preprocessed" "$OUT/data"
fi
ROOT="$OUT/data"
NB_CLASSES=$(grep -c . "$ROOT/classes.txt")
NUM_TRAIN=$(grep -c . "$ROOT/train.csv")
if [ "$NUM_TRAIN" -lt "$BATCH" ]; then  # a tiny folder: one batch per epoch rather than none
  echo "quickstart: $NUM_TRAIN training clips; batch size $BATCH -> $NUM_TRAIN"
  BATCH=$NUM_TRAIN
fi

banner "3. decorrelation: learn the exposure pattern (run_decorrelation_training.py)"
python run_decorrelation_training.py --data_path "$ROOT/pretrain.csv" --data_root "$ROOT" \
  --sampling_rate "$SAMPLING_RATE" --input_size "$SIZE" --val_stride 16 --patch_norm_coded --objective moments \
  --train_sampling per_window "${DECOR[@]}" --lr 1e-3 --wd 0 --seed 0 \
  --output_dir "$OUT/decorrelation" --no_progress
PATTERN="$OUT/decorrelation/pattern_refined.pth"
[ -f "$PATTERN" ] || PATTERN=$(ls -t "$OUT"/decorrelation/pattern_[0-9]*.pth | head -1)

COMMON=(--data_root "$ROOT" --num_frames 16 --sampling_rate "$SAMPLING_RATE" --input_size "$SIZE"
        --batch_size "$BATCH" --num_workers 0 --cache_videos --device cpu --precision auto --seed 0
        --save_ckpt_freq 1000)

banner "4. coded MAE pretraining with the learned pattern (run_pretraining.py)"
time_stage "coded MAE pretraining" \
python run_pretraining.py --model pretrain_coded_videomae_super_tiny_patch8_112 --coded_type decor_fix \
  --pattern "$PATTERN" --data_path "$ROOT/pretrain.csv" --val_path "$ROOT/pretrain_val.csv" "${COMMON[@]}" \
  --mask_type tube --mask_ratio 0.85 --decoder_mask_type run_cell --decoder_mask_ratio 0.75 --decoder_depth 2 \
  --epochs "$PT_EPOCHS" --warmup_epochs "$PT_WARMUP" --lr "$PT_LR" --opt_betas 0.9 0.95 --eval_freq "$PT_EPOCHS" \
  --save_recon 2 --output_dir "$OUT/pretrain" --log_dir "$OUT/tensorboard/pretrain"

# finetune NAME DIR MODEL [extra flags]: same recipe for every model (matched budget)
finetune() {
  local name="$1" dir="$2" model="$3" lr="${LR:-$FT_LR}"; shift 3
  time_stage "$name" \
  python run_finetuning.py --model "$model" "$@" --data_set custom --nb_classes "$NB_CLASSES" \
    --data_path "$ROOT/train.csv" --val_path "$ROOT/val.csv" --test_path "$ROOT/val.csv" \
    --class_names "$ROOT/classes.txt" "${COMMON[@]}" --short_side_size "$SIZE" \
    --epochs "$EPOCHS" --warmup_epochs "$FT_WARMUP" --lr "$lr" --layer_decay 1.0 --weight_decay 0.05 \
    --mixup 0 --cutmix 0 --reprob 0 --aa none --smoothing 0 --flip off --drop_path 0 --init_scale 1.0 \
    --train_crop_scale 0.6 0.75 --train_crop_ratio 1 1 \
    --eval_freq "$EPOCHS" --test_best "${VIEWS[@]}" --output_dir "$OUT/$dir" --log_dir "$OUT/tensorboard/$dir"
}
# --eval_freq $EPOCHS: validate once, after the last epoch, so checkpoint-best is the last epoch's weights
#   (the validation clips are also the test clips of this toy task: no checkpoint is selected on them).
# --flip off: a horizontal flip turns E into W, i.e. changes the label of a motion-direction class.
# --train_crop_ratio 1 1: square crops (no resize of a 4:3 frame to a square), so the training clips keep
#   the directions and speeds of the centre-cropped test clips; scale 0.6-0.75 of a 64 x 84 frame is a
#   58-64 px square. --init_scale 1: VideoMAE's 0.001 head scale delays learning by most of a 360-step run.

banner "5. finetune the coded ViT (run_finetuning.py)"
finetune "coded ViT (SnapPix)" ft_coded coded_vit_super_tiny_patch8_112 --coded_type decor_fix --pattern "$PATTERN"
RUNS=(--run "coded ViT (SnapPix)=$OUT/ft_coded")
if [ "$MAE_INIT" = 1 ]; then
  finetune "coded ViT from the coded MAE" ft_coded_mae coded_vit_super_tiny_patch8_112 --coded_type decor_fix \
    --pattern "$PATTERN" --finetune "$OUT/pretrain/checkpoint-latest.pth"
  RUNS+=(--run "coded ViT from the coded MAE=$OUT/ft_coded_mae")
fi

banner "6. baselines with the same recipe: single frame, long exposure, full-video ViT"
finetune "short exposure (1 frame)" ft_short coded_vit_super_tiny_patch8_112 --coded_type short
finetune "long exposure (mean of 16)" ft_long coded_vit_super_tiny_patch8_112 --coded_type long
LR="$FT_LR_VIDEO" finetune "video ViT (16 frames)" ft_video video_vit_super_tiny_patch16_112

banner "7. results (multi-view test of each model's best checkpoint on the validation clips)"
python -m snappix.tools.quickstart_report --out_dir "$OUT" --pattern "$PATTERN" \
  "${RUNS[@]}" \
  --run "short exposure (1 frame)=$OUT/ft_short" --run "long exposure (mean of 16)=$OUT/ft_long" \
  --run "video ViT (16 frames)=$OUT/ft_video" --total_seconds "$((SECONDS - START))"
