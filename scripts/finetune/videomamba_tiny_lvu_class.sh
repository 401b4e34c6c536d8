#!/usr/bin/env bash
# Finetune recipe configs/finetune/videomamba_tiny_lvu_class.yaml on one LVU classification task; environment as
# in scripts/finetune/finetune.sh, plus NB_CLASSES (relation 4, speak 5, scene 6, director 10, genre 4,
# writer 10, year 9). Lists are 'cls' rows (path label); each video is cut into 60 s windows (durations read
# from the videos) every 16 s.
#   GPUS=2 NB_CLASSES=6 OUTPUT_DIR=out/lvu_scene DATA_PATH=lists/LVU/scene DATA_ROOT=/data \
#   FINETUNE=out/videomamba_tiny_k400/checkpoint-best.pth bash scripts/finetune/videomamba_tiny_lvu_class.sh
set -euo pipefail
: "${NB_CLASSES:?set NB_CLASSES: the number of classes of the LVU task}"
exec bash "$(dirname "$0")/finetune.sh" videomamba_tiny_lvu_class --nb_classes "$NB_CLASSES" \
  --trimmed 60 --time_stride 16 "$@"
