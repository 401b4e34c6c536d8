#!/usr/bin/env bash
# VideoMAE pretraining of the super-tiny video ViT (16 grey frames, patch 8, tubelet 2): the
# "video ViT" baseline of SnapPix, whose pretraining script SnapPix did not ship.
#   GPUS=4 OUTPUT_DIR=out/videomae_super_tiny_pt DATA_PATH=lists/pretrained_combine.csv DATA_ROOT=/data \
#   bash scripts/pretrain/videomae_super_tiny_pt.sh [extra flags]
set -euo pipefail
source "$(dirname "$0")/../_launch.sh"
GPUS=${GPUS:-4}
require OUTPUT_DIR "where checkpoints and logs go"
require DATA_PATH "pretraining list (path 0 -1 rows)"
require DATA_ROOT "folder the list's paths are relative to"
launch run_pretraining.py --config "$REPO/configs/pretrain/videomae_super_tiny.yaml" \
  --data_path "$DATA_PATH" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR" "$@"
