#!/usr/bin/env bash
# SnapPix coded-image -> video pretraining, ViT-B/8 (docs/methods/snappix.md recipe: 300 epochs,
# 32 videos x 4 samples per GPU, acc_iters 16 on 4 GPUs, lr 1e-3 -> 8e-3, tube 0.85 / running cell 0.5).
#   GPUS=4 OUTPUT_DIR=out/coded_vitb_pt DATA_PATH=lists/pretrained_combine.csv DATA_ROOT=/data \
#   PATTERN=patterns/pattern_4.pth bash scripts/pretrain/vitb_pt.sh [extra flags]
# CODED_TYPE (default decor_fix) selects the exposure pattern; extra flags override the config.
exec bash "$(dirname "$0")/coded_pt.sh" coded_vitb_snappix "$@"
