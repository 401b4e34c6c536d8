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
# 16 tokens), then a single frame (the quickstart's short-exposure model with 16-px patches: 16 tokens, a
# quarter of its cost; one frame cannot tell the direction at any patch size), beside 3 the quickstart's video ViT
# (16 frames, 64 tokens) with the same recipe and budget (two trainings at a time, one thread each; logs in
# OUT/logs) -> 4 multi-view test of each -> results table (OUT/results.md).
# Every model starts from scratch; the class is the direction of motion, so one frame stays near chance.
set -euo pipefail
HERE=$(pwd)
cd "$(dirname "$0")/../.."
source scripts/demos/_lib.sh

OUT=""
DATA=""
EPOCHS=30
NUM_VIDEOS=480
FAST=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) EPOCHS="$2"; shift 2 ;;
    --num_videos) NUM_VIDEOS="$2"; shift 2 ;;
    *) demo_common_arg videomamba "$@"; shift "$DEMO_SHIFT" ;;
  esac
done
demo_paths videomamba outputs/demo_videomamba 1

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

demo_prepare videomamba
demo_data


# Two trainings at a time, one thread each (the machine's two cores): the pure-PyTorch selective scan runs many
# small steps that gain little from a second thread. Each run's output goes to OUT/logs/<dir>.log.
demo_banner "2-3. VideoMamba (videomamba_super_tiny: width 96, depth 4, grey, 16 frames, 32 px patches in tubelets of 4) \
then a single frame, beside the video ViT (16 frames), with the same recipe and budget; logs in $OUT/logs"
( demo_finetune "VideoMamba (16 frames)" ft_videomamba videomamba_super_tiny "$LR_MAMBA" > "$OUT/logs/ft_videomamba.log" 2>&1
  echo "   VideoMamba done [$((SECONDS - START))s]"
  demo_finetune "single frame (short exposure)" ft_short coded_vit_super_tiny_patch8_112 "$LR_FRAME" --coded_type short \
    --patch_size 16 \
    > "$OUT/logs/ft_short.log" 2>&1
  echo "   single frame done [$((SECONDS - START))s]" ) &
FIRST=$!
( demo_finetune "video ViT (16 frames)" ft_video video_vit_super_tiny_patch16_112 "$LR_VIDEO" > "$OUT/logs/ft_video.log" 2>&1
  echo "   video ViT done [$((SECONDS - START))s]" ) &
SECOND=$!
demo_wait_pair videomamba "$SECOND" "$FIRST"

demo_banner "4. results (multi-view test of each final model on the validation clips)"
python -m snappix.tools.demo_report --title "VideoMamba demo" --timings "$TIMINGS" \
  --run "VideoMamba (16 frames)=$OUT/ft_videomamba" --run "video ViT (16 frames)=$OUT/ft_video" \
  --run "single frame (short exposure)=$OUT/ft_short" --baseline "single frame (short exposure)" --margin 15 \
  --notes "$EPOCHS epochs of batch $BATCH from scratch; top-1 on the validation clips (chance 12.5 %); train time \
is the wall time of run_finetuning.py (training, validation and the multi-view test; two runs at a time, one thread \
each); GFLOPs count matmuls and \
convolutions only (the selective scan's element-wise recurrence is not counted). Whole demo: \
$(( (SECONDS - START) / 60 )) min $(( (SECONDS - START) % 60 )) s after the environment set-up." \
  --out "$OUT/results.md"
