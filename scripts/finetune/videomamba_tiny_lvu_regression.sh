#!/usr/bin/env bash
# Finetune recipe configs/finetune/videomamba_tiny_lvu_regression.yaml on an LVU regression task (like, view):
# one output, MSE loss, validation and test report MSE and Pearson r. Environment as in
# scripts/finetune/finetune.sh. Lists are 'reg' rows with the normalised target (see docs/methods/videomamba.md);
# each video is cut into 60 s windows every 16 s.
#   GPUS=2 OUTPUT_DIR=out/lvu_like DATA_PATH=lists/LVU/like DATA_ROOT=/data \
#   FINETUNE=out/videomamba_tiny_k400/checkpoint-best.pth bash scripts/finetune/videomamba_tiny_lvu_regression.sh
set -euo pipefail
exec bash "$(dirname "$0")/finetune.sh" videomamba_tiny_lvu_regression --task regression --nb_classes 1 \
  --trimmed 60 --time_stride 16 "$@"
