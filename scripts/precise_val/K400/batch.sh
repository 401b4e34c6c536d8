#!/usr/bin/env bash
# Evaluate every K400 model in turn; each reads its own folder $OUT_ROOT/<recipe> (e.g. out/coded_vits_k400).
#   OUT_ROOT=out DATA_PATH=lists/K400 DATA_ROOT=/data PATTERN=patterns/pattern_4.pth bash scripts/precise_val/K400/batch.sh
set -euo pipefail
here="$(dirname "$0")"
: "${OUT_ROOT:?set OUT_ROOT: the folder holding one finetuning output folder per recipe}"
for pair in vits:coded_vits_k400 vitb:coded_vitb_k400 videovit:videovit_k400 c3d:c3d_k400 svc2d:svc2d_k400; do
  script=${pair%%:*}; recipe=${pair#*:}
  if [ -f "$OUT_ROOT/$recipe/checkpoint-best.pth" ]; then
    echo "== $recipe =="
    OUTPUT_DIR="$OUT_ROOT/$recipe" bash "$here/$script.sh" "$@"
  else
    echo "== $recipe: no $OUT_ROOT/$recipe/checkpoint-best.pth, skipped =="
  fi
done
