#!/usr/bin/env bash
# SnapPix coded-image -> video pretraining, ViT-B/8 (specs/snappix.md §3.4 recipe: 300 epochs,
# 32 videos x 4 samples per GPU, acc_iters 16 on 4 GPUs, lr 1e-3 -> 8e-3, tube 0.85 / running cell 0.5).
#   GPUS=4 OUTPUT_DIR=out/coded_vitb_pt DATA_PATH=lists/pretrained_combine.csv DATA_ROOT=/data \
#   PATTERN=patterns/pattern_4.pth bash scripts/pretrain/vitb_pt.sh [extra flags]
# CODED_TYPE (default decor_fix) selects the exposure pattern; extra flags override the config.
set -euo pipefail
source "$(dirname "$0")/../_launch.sh"
GPUS=${GPUS:-4}
require OUTPUT_DIR "where checkpoints and logs go"
require DATA_PATH "pretraining list (path 0 -1 rows, e.g. dataset/combine_pretrained.py output)"
require DATA_ROOT "folder the list's paths are relative to"
require PATTERN "exposure pattern file (SnapPix's pattern_4.pth or run_decorrelation_training.py output)"
launch run_pretraining.py --config "$REPO/configs/pretrain/coded_vitb_snappix.yaml" \
  --coded_type "${CODED_TYPE:-decor_fix}" --pattern "$PATTERN" \
  --data_path "$DATA_PATH" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR" "$@"
