#!/usr/bin/env bash
# Finetune with a recipe from configs/finetune/RECIPE.yaml (SnapPix values, docs/methods/snappix.md) on $GPUS processes.
#   GPUS=2 OUTPUT_DIR=out/coded_vits_k400 DATA_PATH=lists/K400 DATA_ROOT=/data \
#   FINETUNE=out/coded_vits_pt/checkpoint-299.pth PATTERN=patterns/pattern_4.pth \
#   bash scripts/finetune/finetune.sh coded_vits_k400 [extra flags]
# DATA_PATH: a folder with train.csv / val.csv (/ test.csv), or a list file (then pass --val_path).
# FINETUNE (pretraining checkpoint) and PATTERN (coded models) are optional; extra flags override the YAML.
# After training, checkpoint-best.pth is tested with the recipe's views (--no_test_best skips it).
set -euo pipefail
source "$(dirname "$0")/../_launch.sh"
RECIPE=${1:?usage: finetune.sh RECIPE [flags]  (RECIPE: a file name in configs/finetune without .yaml)}
shift
CONFIG="$REPO/configs/finetune/$RECIPE.yaml"
[ -f "$CONFIG" ] || { echo "no recipe $CONFIG" >&2; exit 2; }
GPUS=${GPUS:-2}
require OUTPUT_DIR "where checkpoints and logs go"
require DATA_PATH "folder with train.csv/val.csv, or the training list"
require DATA_ROOT "folder the lists' paths are relative to"
extra=()
if [ -n "${FINETUNE:-}" ]; then extra+=(--finetune "$FINETUNE"); fi
if [ -n "${PATTERN:-}" ]; then extra+=(--pattern "$PATTERN"); fi
launch run_finetuning.py --config "$CONFIG" --dist_eval \
  --data_path "$DATA_PATH" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR" "${extra[@]}" "$@"
