#!/usr/bin/env bash
# Saccade-VSSL pretraining of R3D (configs/pretrain/saccade_r3d_ucf101.yaml: 300 epochs, batch 16 videos = 96 clips,
# SGD lr 0.1 absolute, x0.2 at 90 / 180 / 240, prototypes after the warm-up; docs/methods/saccade.md).
#   OUTPUT_DIR=out/saccade_r3d DATA_PATH=lists/UCF/train.csv DATA_ROOT=/data \
#   SCANPATH_ROOT=/data/UCF101/scan_idx_7 bash scripts/pretrain/saccade_r3d.sh [extra flags]
# SCANPATH_ROOT: scan_idx files, <root>/<list path without extension>.txt from
#   python -m snappix.tools.scanpaths --list "$DATA_PATH" --data_root "$DATA_ROOT" --out_root "$SCANPATH_ROOT"
# or the reference's flat scan_idx_7/<video>.txt. The list: 'path label' rows (dataset/build_ucf_hmdb_lists.py); add --list_format pretrain for 'path 0 -1' rows.
# GPUS defaults to 1: the recipe's lr 0.1 is quoted for one GPU's batch (--lr_scale none does not rescale it).
# Extra flags override the config (e.g. --dataset hmdb51: random fixations, HMDB51 has no scanpaths).
set -euo pipefail
source "$(dirname "$0")/../_launch.sh"
require OUTPUT_DIR "where checkpoints and logs go"
require DATA_PATH "training list (UCF101 split 1 train, 'path label' rows: dataset/build_ucf_hmdb_lists.py)"
require DATA_ROOT "folder the list's paths are relative to"
SCAN=()  # SCANPATH_ROOT may stay unset only with --random_fixations (or --dataset hmdb51) among the extra flags
if [ -n "${SCANPATH_ROOT:-}" ]; then SCAN=(--scanpath_root "$SCANPATH_ROOT"); fi
launch run_pretraining.py --config "$REPO/configs/pretrain/saccade_r3d_ucf101.yaml" "${SCAN[@]}" \
  --data_path "$DATA_PATH" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR" "$@"
