#!/usr/bin/env bash
# Evaluate every UCF model in turn; each reads its own folder $OUT_ROOT/<recipe> (e.g. out/coded_vits_ucf).
#   OUT_ROOT=out DATA_PATH=lists/UCF DATA_ROOT=/data PATTERN=patterns/pattern_4.pth bash scripts/precise_val/UCF/batch.sh
set -euo pipefail
here="$(dirname "$0")"
: "${OUT_ROOT:?set OUT_ROOT: the folder holding one finetuning output folder per recipe}"
for pair in vits:coded_vits_ucf vitb:coded_vitb_ucf videovit:videovit_ucf c3d:c3d_ucf svc2d:svc2d_ucf; do
  script=${pair%%:*}; recipe=${pair#*:}
  if [ -f "$OUT_ROOT/$recipe/checkpoint-best.pth" ]; then
    echo "== $recipe =="
    OUTPUT_DIR="$OUT_ROOT/$recipe" bash "$here/$script.sh" "$@"
  else
    echo "== $recipe: no $OUT_ROOT/$recipe/checkpoint-best.pth, skipped =="
  fi
done
