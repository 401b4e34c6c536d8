#!/usr/bin/env bash
# Evaluate every SSV2 model in turn; each reads its own folder $OUT_ROOT/<recipe> (e.g. out/coded_vits_ssv2).
#   OUT_ROOT=out DATA_PATH=lists/SSV2 DATA_ROOT=/data PATTERN=patterns/pattern_4.pth bash scripts/precise_val/SSV2/batch.sh
set -euo pipefail
here="$(dirname "$0")"
: "${OUT_ROOT:?set OUT_ROOT: the folder holding one finetuning output folder per recipe}"
for pair in vits:coded_vits_ssv2 vitb:coded_vitb_ssv2 videovit:videovit_ssv2 c3d:c3d_ssv2 svc2d:svc2d_ssv2; do
  script=${pair%%:*}; recipe=${pair#*:}
  if [ -f "$OUT_ROOT/$recipe/checkpoint-best.pth" ]; then
    echo "== $recipe =="
    OUTPUT_DIR="$OUT_ROOT/$recipe" bash "$here/$script.sh" "$@"
  else
    echo "== $recipe: no $OUT_ROOT/$recipe/checkpoint-best.pth, skipped =="
  fi
done
