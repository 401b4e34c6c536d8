#!/usr/bin/env bash
# snappix quickstart: create/reuse .venv, install, and run the pipeline on an embedded
# synthetic dataset (no download, CPU is enough). Outputs go to outputs/quickstart/.
#
# Stages available so far: synthetic data -> SnapPix preprocessing -> data loading.
# Usage: bash scripts/quickstart.sh [--data DIR]   (DIR: your own folder of videos)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

OUT=outputs/quickstart
DATA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"

if [ -z "$DATA" ]; then
  echo "== 1. synthetic dataset (8 motion-direction classes) =="
  python -m snappix.tools.make_synthetic "$OUT/raw" --num_videos 32 --seed 0
  SRC="$OUT/raw/videos"
else
  SRC="$DATA"
fi

echo "== 2. SnapPix preprocessing (linear grey, short side 112) =="
python preprocess_data.py "$SRC" "$OUT/videos" --input_format .mp4,.avi,.webm,.mkv --cores 2

echo "== 3. lists and data loading =="
python - "$OUT" <<'PY'
import os, sys
from snappix.data.lists import write_list
out = sys.argv[1]
root = os.path.join(out, "videos")
names = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs if f.endswith(".mp4"))
write_list(os.path.join(out, "pretrain.csv"), [(n, 0, -1) for n in names], "pretrain")
print(f"{len(names)} preprocessed videos listed in {out}/pretrain.csv")
PY
python -m snappix.tools.show_batch --data_path "$OUT/pretrain.csv" --data_root "$OUT/videos" \
  --mode pretrain --log_dir "$OUT" --out "$OUT/pretrain_batch.png"

echo
echo "done: outputs in $OUT (pretrain_batch.png shows the frames the pretraining loader produces)"
