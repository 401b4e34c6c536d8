#!/usr/bin/env bash
# Precise (multi-view) evaluation of a finetuned model: every test video x SEGMENTS temporal views x
# CROPS spatial crops, softmax averaged per video, video-level top-1/top-5 plus per-class accuracy and a
# confusion matrix in $OUTPUT_DIR/test/. Evaluates $OUTPUT_DIR/checkpoint-best.pth unless CHECKPOINT is set.
#   GPUS=1 OUTPUT_DIR=out/coded_vits_k400 DATA_PATH=lists/K400 DATA_ROOT=/data PATTERN=patterns/pattern_4.pth \
#   bash scripts/precise_val/eval.sh RECIPE SEGMENTS CROPS [extra flags]
set -euo pipefail
source "$(dirname "$0")/../_launch.sh"
RECIPE=${1:?usage: eval.sh RECIPE SEGMENTS CROPS [flags]}
SEGMENTS=${2:?number of temporal views}
CROPS=${3:?number of spatial crops}
shift 3
CONFIG="$REPO/configs/finetune/$RECIPE.yaml"
[ -f "$CONFIG" ] || { echo "no recipe $CONFIG" >&2; exit 2; }
require OUTPUT_DIR "the finetuning output folder (holds checkpoint-best.pth)"
require DATA_PATH "folder with val.csv / test.csv, or the test list (then pass --test_path)"
require DATA_ROOT "folder the lists' paths are relative to"
CHECKPOINT=${CHECKPOINT:-$OUTPUT_DIR/checkpoint-best.pth}
[ -f "$CHECKPOINT" ] || { echo "checkpoint not found: $CHECKPOINT" >&2; exit 2; }
extra=()
if [ -n "${PATTERN:-}" ]; then extra+=(--pattern "$PATTERN"); fi
launch run_finetuning.py --config "$CONFIG" --eval --dist_eval --resume "$CHECKPOINT" \
  --test_num_segment "$SEGMENTS" --test_num_crop "$CROPS" \
  --data_path "$DATA_PATH" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR" "${extra[@]}" "$@"
