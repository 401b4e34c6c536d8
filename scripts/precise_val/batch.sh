#!/usr/bin/env bash
# Evaluate every model of one dataset in turn; each reads its own folder $OUT_ROOT/<recipe>.
#   OUT_ROOT=out DATA_PATH=lists/UCF DATA_ROOT=/data PATTERN=patterns/pattern_4.pth bash scripts/precise_val/batch.sh UCF
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
DATASET=${1:?usage: batch.sh K400|SSV2|UCF [flags]}
shift
key=$(echo "$DATASET" | tr '[:upper:]' '[:lower:]')
: "${OUT_ROOT:?set OUT_ROOT: the folder holding one finetuning output folder per recipe}"
for pair in vits:coded_vits vitb:coded_vitb videovit:videovit c3d:c3d svc2d:svc2d \
            videomamba_tiny:videomamba_tiny videomamba_small:videomamba_small videomamba_middle:videomamba_middle; do
  script=${pair%%:*}; recipe=${pair#*:}_$key
  [ -f "$here/$DATASET/$script.sh" ] || continue  # no such recipe for this dataset
  if [ -f "$OUT_ROOT/$recipe/checkpoint-best.pth" ]; then
    echo "== $recipe =="
    OUTPUT_DIR="$OUT_ROOT/$recipe" bash "$here/$DATASET/$script.sh" "$@"
  else
    echo "== $recipe: no $OUT_ROOT/$recipe/checkpoint-best.pth, skipped =="
  fi
done
