#!/usr/bin/env bash
# SnapPix reconstruction study (docs/methods/snappix.md): super-tiny coded MAE, no masking, coded image -> 16 frames,
# PSNR every 5 epochs. Sweep the pattern with CODED_TYPE = short | long | naive | sparse | decor_fix.
#   GPUS=2 OUTPUT_DIR=out/recon_decor_fix DATA_PATH=lists/SSV2_recon/train.csv VAL_PATH=lists/SSV2_recon/val.csv \
#   DATA_ROOT=/data PATTERN_DIR=patterns CODED_TYPE=decor_fix bash scripts/pretrain/coded_vits_reconstruction.sh
set -euo pipefail
source "$(dirname "$0")/../_launch.sh"
GPUS=${GPUS:-2}
require OUTPUT_DIR "where checkpoints and logs go"
require DATA_PATH "training list (path 0 -1 rows)"
require VAL_PATH "validation list for PSNR"
require DATA_ROOT "folder the lists' paths are relative to"
pattern_args=()
if [ -n "${PATTERN:-}" ]; then pattern_args+=(--pattern "$PATTERN"); fi
if [ -n "${PATTERN_DIR:-}" ]; then pattern_args+=(--pattern_dir "$PATTERN_DIR"); fi
launch run_pretraining.py --config "$REPO/configs/pretrain/coded_super_tiny_reconstruction.yaml" \
  --coded_type "${CODED_TYPE:-decor_fix}" "${pattern_args[@]}" --save_recon "${SAVE_RECON:-4}" \
  --data_path "$DATA_PATH" --val_path "$VAL_PATH" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR" "$@"
