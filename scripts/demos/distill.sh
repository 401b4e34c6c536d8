#!/usr/bin/env bash
# Masked distillation demo on a CPU (UMT / VideoMamba masked pretraining), about ten minutes on 2 cores, no
# download: a teacher this repository trains itself stands in for CLIP.
#
#   bash scripts/demos/distill.sh
# Options: --out DIR (default outputs/demo_distill in the repository; relative to the folder you run the script
#          from), --data DIR (a finished quickstart data folder; default: outputs/quickstart/data when it exists,
#          else the clips are made here), --teacher FILE (a finished snappix video-ViT checkpoint of that
#          data, e.g. outputs/quickstart/ft_video/checkpoint-best.pth; the student then takes its token grid;
#          default: the teacher is trained here), --ft_epochs N (finetuning budget of every student, default
#          10), --distill_epochs N (default 16), --fast (tiny settings for tests), --keep (reuse the finished
#          stages of an earlier run).
#
# Stages: 1 data (the quickstart's synthetic motion-direction clips, grey, 64 px) -> 2 teacher: the quickstart's
# video ViT recipe (video_vit_super_tiny_patch16_112) with tubelets of 8 frames and 16-px patches (a 2 x 4 x 4
# token grid: half the quickstart's 64 tokens, so that the VideoMamba student trains in minutes) on the labelled
# training clips -> 3 masked distillation of videomamba_super_tiny_pretrain (the same grid) on the training
# clips without labels, 80 % of the tokens of every tubelet slot hidden (4 of 16 visible): with the
# teacher-attention mask, and with a uniform mask of the same count (the ablation) -> 4 finetuning of
# videomamba_super_tiny (same grid) from scratch and from each distilled student, one recipe and budget ->
# 5 multi-view test and table (OUT/results.md).
# Two chains run side by side, one thread each: A teacher -> distil (attention) -> finetune;
# B scratch finetune -> distil (uniform, once the teacher exists) -> finetune. Logs in OUT/logs.
set -euo pipefail
HERE=$(pwd)
cd "$(dirname "$0")/../.."
source scripts/demos/_lib.sh

OUT=""
DATA=""
TEACHER=""
FT_EPOCHS=10
DISTILL_EPOCHS=16
TEACHER_EPOCHS=20
NUM_VIDEOS=480
FAST=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --teacher) TEACHER="$2"; shift 2 ;;
    --ft_epochs) FT_EPOCHS="$2"; shift 2 ;;
    --distill_epochs) DISTILL_EPOCHS="$2"; shift 2 ;;
    *) demo_common_arg distill "$@"; shift "$DEMO_SHIFT" ;;
  esac
done
demo_paths distill outputs/demo_distill 1
if [ -n "$TEACHER" ]; then
  TEACHER=$(demo_absolute "$TEACHER")
  [ -f "$TEACHER" ] || { echo "distill demo: --teacher $TEACHER does not exist" >&2; exit 2; }
fi

source scripts/_venv.sh

# the student's token grid: the teacher's (16 frames of 64 px)
TUBELET=8
PATCH=16
if [ -n "$TEACHER" ]; then
  read -r TUBELET PATCH < <(python -c "
from snappix.teachers import build_teacher
t, h, _ = build_teacher('snappix', '$TEACHER', img_size=64, num_frames=16).grid
print(16 // t, 64 // h)")
  echo "distill demo: teacher $TEACHER: tubelets of $TUBELET frames, $PATCH-px patches"
fi

SIZE=64
BATCH=32
LR_VIDEO=1.2e-2     # the quickstart's video-ViT lr (1.5e-3 at batch 32)
LR_MAMBA=2.4e-2     # the VideoMamba demo's lr (3e-3 at batch 32), for every student's finetuning
LR_DISTILL=1.2e-2   # 1.5e-3 at batch 32
WARMUP=3
DISTILL_WARMUP=2
VIEWS=(--test_num_segment 2 --test_num_crop 3)
if [ "$FAST" = 1 ]; then
  FT_EPOCHS=1; DISTILL_EPOCHS=1; TEACHER_EPOCHS=1; NUM_VIDEOS=32; BATCH=8; WARMUP=0; DISTILL_WARMUP=0
  VIEWS=(--test_num_segment 1 --test_num_crop 1)
fi
# one thread per training, two trainings at a time (see the VideoMamba demo)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

demo_prepare distill
demo_data
# the unlabelled pretraining list of the training clips (path start total); validation clips are never seen
sed -E 's/[[:space:]]+[0-9]+[[:space:]]*$/ 0 -1/' "$ROOT/train.csv" > "$OUT/pretrain.csv"
STUDENT_FT=(--patch_size "$PATCH" --tubelet_size "$TUBELET")

# distil NAME DIR MASK_TYPE: masked distillation of the VideoMamba student from the teacher
distil() {
  local name="$1" dir="$2" mask="$3"
  if [ "$KEEP" = 1 ] && [ -f "$OUT/$dir/checkpoint-latest.pth" ]; then echo "($name: kept)"; return; fi
  local t0=$SECONDS
  python run_pretraining.py --task distill --model videomamba_super_tiny_pretrain --patch_size "$PATCH" --tubelet_size "$TUBELET" \
    --input_size "$SIZE" --num_frames 16 --sampling dense --sampling_rate 1 \
    --teacher snappix --teacher_path "$TEACHER" --mask_type "$mask" --mask_ratio 0.8 \
    --data_path "$OUT/pretrain.csv" --data_root "$ROOT" --batch_size "$BATCH" --num_workers 0 --cache_videos \
    --epochs "$DISTILL_EPOCHS" --warmup_epochs "$DISTILL_WARMUP" --lr "$LR_DISTILL" --min_lr 1e-5 --weight_decay 0.05 \
    --opt_betas 0.9 0.95 --drop_path 0 --device cpu --precision auto --seed 0 --save_ckpt_freq 1000 \
    --output_dir "$OUT/$dir" --log_dir "$OUT/tensorboard/$dir" --no_progress
  printf '%s\t%s\n' "$name" "$((SECONDS - t0))" >> "$TIMINGS"
}

run_teacher() {
  if [ -n "$TEACHER" ]; then echo "   teacher: reusing $TEACHER"; return; fi
  EPOCHS=$TEACHER_EPOCHS demo_finetune "teacher: video ViT (labels)" teacher video_vit_super_tiny_patch16_112 \
    "$LR_VIDEO" --tubelet_size "$TUBELET"
}
TEACHER_FILE=${TEACHER:-$OUT/teacher/checkpoint-best.pth}
teacher_ready() { while [ ! -f "$OUT/teacher.done" ]; do sleep 2; done; [ -f "$TEACHER_FILE" ]; }

demo_banner "2-4. two chains, one thread each (logs in $OUT/logs): A teacher -> distil (teacher attention) -> \
finetune; B finetune from scratch -> distil (uniform mask) -> finetune; finetuning $FT_EPOCHS epochs each"
rm -f "$OUT/teacher.done"
( run_teacher > "$OUT/logs/teacher.log" 2>&1 || { touch "$OUT/teacher.done"; exit 1; }
  touch "$OUT/teacher.done"; echo "   A: teacher ready [$((SECONDS - START))s]"
  TEACHER=$TEACHER_FILE distil "distil (teacher-attention mask)" distill_attention teacher_attention \
    > "$OUT/logs/distill_attention.log" 2>&1
  echo "   A: distillation (teacher attention) done [$((SECONDS - START))s]"
  EPOCHS=$FT_EPOCHS demo_finetune "student, distilled (teacher-attention mask)" ft_distill_attention \
    videomamba_super_tiny "$LR_MAMBA" "${STUDENT_FT[@]}" --finetune "$OUT/distill_attention/checkpoint-latest.pth" \
    > "$OUT/logs/ft_distill_attention.log" 2>&1
  echo "   A: finetuning done [$((SECONDS - START))s]" ) &
CHAIN_A=$!
( EPOCHS=$FT_EPOCHS demo_finetune "student from scratch" ft_scratch videomamba_super_tiny "$LR_MAMBA" \
    "${STUDENT_FT[@]}" > "$OUT/logs/ft_scratch.log" 2>&1
  echo "   B: scratch finetuning done [$((SECONDS - START))s]"
  teacher_ready
  TEACHER=$TEACHER_FILE distil "distil (uniform mask)" distill_random frame_random > "$OUT/logs/distill_random.log" 2>&1
  echo "   B: distillation (uniform mask) done [$((SECONDS - START))s]"
  EPOCHS=$FT_EPOCHS demo_finetune "student, distilled (uniform mask)" ft_distill_random videomamba_super_tiny \
    "$LR_MAMBA" "${STUDENT_FT[@]}" --finetune "$OUT/distill_random/checkpoint-latest.pth" \
    > "$OUT/logs/ft_distill_random.log" 2>&1
  echo "   B: finetuning done [$((SECONDS - START))s]" ) &
CHAIN_B=$!
demo_wait_pair distill "$CHAIN_A" "$CHAIN_B"

demo_banner "5. results (multi-view test of each final model on the validation clips)"
RUNS=(--run "student from scratch=$OUT/ft_scratch"
      --run "student, distilled (teacher-attention mask)=$OUT/ft_distill_attention"
      --run "student, distilled (uniform mask)=$OUT/ft_distill_random")
TEACHER_DIR=$(dirname "$TEACHER_FILE")
if [ -f "$TEACHER_DIR/test/multiview_summary.json" ]; then
  RUNS=(--run "teacher: video ViT (labels)=$TEACHER_DIR" "${RUNS[@]}")
fi
DISTIL_TIMES=$(awk -F'\t' '/^distil/ { printf "%s%s %s s", sep, $1, $2; sep = ", " }' "$TIMINGS")
python -m snappix.tools.demo_report --title "Masked distillation demo" --timings "$TIMINGS" "${RUNS[@]}" \
  --baseline "student from scratch" --margin 10 \
  --notes "Student: videomamba_super_tiny with $PATCH-px patches in tubelets of $TUBELET frames (the teacher's token grid), finetuned $FT_EPOCHS epochs of batch \
$BATCH from scratch or from $DISTILL_EPOCHS epochs of masked distillation (80 % of the tokens of each tubelet slot \
hidden) on the training clips without labels; the teacher: ${TEACHER:-the video-ViT recipe of the quickstart at that grid, $TEACHER_EPOCHS epochs}. \
Top-1 on the validation clips (chance 12.5 %); train time is the wall time of each finetuning run (two at a time, \
one thread each), the distillation before it not included (${DISTIL_TIMES:-kept from an earlier run}). Whole demo: $(( (SECONDS - START) / 60 )) min $(( (SECONDS - START) % 60 )) s after the environment set-up." \
  --out "$OUT/results.md"
