#!/usr/bin/env bash
# Saccade-VSSL evaluation (docs/methods/saccade.md, "Evaluation") on $GPUS processes:
#   MODE retrieval: recall@1/5/10/20/50 of the test videos (queries) against the training videos (gallery),
#                   10 uniformly spaced clips x centre crop, projected features (run_finetuning.py --task retrieval);
#   MODE linear:    linear probe, configs/finetune/saccade_linear.yaml (frozen backbone and BatchNorm);
#   MODE finetune:  full finetuning, configs/finetune/saccade_finetune.yaml (dropout 0.7);
#   linear / finetune select the epoch on a 10 % split of the training list (--val_split 0.1) and test the
#   last and the selected epoch on the test list (OUTPUT_DIR/selection.md).
#     OUTPUT_DIR=out/r3d_ucf_ret DATA_PATH=lists/UCF DATA_ROOT=/data CHECKPOINT=out/saccade_r3d/checkpoint-299.pth \
#     bash scripts/eval/saccade_eval.sh retrieval ucf101 [extra flags]
# DATASET: ucf101 or hmdb51. DATA_PATH: folder with train.csv / val.csv of split 1 (dataset/build_ucf_hmdb_lists.py;
# val.csv is the official test list). CHECKPOINT: a run_pretraining.py --task saccade checkpoint (backbone.* and
# projection.* keys). MODEL: saccade_r3d (default) or saccade_r21d. Extra flags override the recipe.
set -euo pipefail
source "$(dirname "$0")/../_launch.sh"
MODE=${1:?usage: saccade_eval.sh retrieval|linear|finetune ucf101|hmdb51 [flags]}
DATASET=${2:?usage: saccade_eval.sh retrieval|linear|finetune ucf101|hmdb51 [flags]}
shift 2
case "$DATASET" in
  ucf101) DATA_SET=UCF101 ;;
  hmdb51) DATA_SET=HMDB51 ;;
  *) echo "DATASET must be ucf101 or hmdb51, got $DATASET" >&2; exit 2 ;;
esac
GPUS=${GPUS:-1}
MODEL=${MODEL:-saccade_r3d}
require OUTPUT_DIR "where the results go"
require DATA_PATH "folder with train.csv (gallery / training) and val.csv (the test split)"
require DATA_ROOT "folder the lists' paths are relative to"
require CHECKPOINT "the Saccade-VSSL pretraining checkpoint (run_pretraining.py --task saccade)"
case "$MODE" in
  retrieval)
    launch run_finetuning.py --task retrieval --model "$MODEL" --in_chans 3 --data_set "$DATA_SET" \
      --num_frames 16 --sampling_rate 1 --input_size 112 --short_side_size 128 --retrieval_clips 10 \
      --batch_size 32 --dist_eval --finetune "$CHECKPOINT" --data_path "$DATA_PATH" --data_root "$DATA_ROOT" \
      --output_dir "$OUTPUT_DIR" "$@" ;;
  linear|finetune)
    launch run_finetuning.py --config "$REPO/configs/finetune/saccade_$MODE.yaml" --model "$MODEL" \
      --data_set "$DATA_SET" --dist_eval --finetune "$CHECKPOINT" --data_path "$DATA_PATH" \
      --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR" "$@" ;;
  *) echo "MODE must be retrieval, linear or finetune, got $MODE" >&2; exit 2 ;;
esac
