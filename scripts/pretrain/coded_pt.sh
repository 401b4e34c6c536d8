#!/usr/bin/env bash
# SnapPix coded-image -> video pretraining with a recipe from configs/pretrain/RECIPE.yaml
#   GPUS=4 OUTPUT_DIR=out/coded_vits_pt DATA_PATH=lists/pretrained_combine.csv DATA_ROOT=/data \
#   PATTERN=patterns/pattern_4.pth bash scripts/pretrain/coded_pt.sh coded_vits_snappix [extra flags]
# CODED_TYPE (default decor_fix) selects the exposure pattern; extra flags override the config.
set -euo pipefail
source "$(dirname "$0")/../_launch.sh"
RECIPE=${1:?usage: coded_pt.sh RECIPE [flags]  (a file name in configs/pretrain without .yaml)}
shift
GPUS=${GPUS:-4}
require OUTPUT_DIR "where checkpoints and logs go"
require DATA_PATH "pretraining list (path 0 -1 rows, e.g. dataset/combine_pretrained.py output)"
require DATA_ROOT "folder the list's paths are relative to"
require PATTERN "exposure pattern file (SnapPix's pattern_4.pth or run_decorrelation_training.py output)"
launch run_pretraining.py --config "$REPO/configs/pretrain/$RECIPE.yaml" \
  --coded_type "${CODED_TYPE:-decor_fix}" --pattern "$PATTERN" \
  --data_path "$DATA_PATH" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR" "$@"
