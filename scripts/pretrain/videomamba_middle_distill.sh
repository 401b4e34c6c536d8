#!/usr/bin/env bash
# VideoMamba-M masked distillation from a frozen CLIP ViT-B/16 teacher (configs/pretrain/videomamba_middle_distill_k400.yaml:
# 800 epochs, 8 sparse frames at 224 px, 80 % of each frame's tokens hidden by the teacher's attention, lr 1.2e-3 at 2048).
#   GPUS=8 NNODES=4 OUTPUT_DIR=out/vm_m_distill DATA_PATH=lists/k400_train.csv DATA_ROOT=/data \
#   TEACHER_PATH=weights/ViT-B-16.pt bash scripts/pretrain/videomamba_middle_distill.sh [extra flags]
# TEACHER_PATH: OpenAI's ViT-B-16.pt, an open_clip or a timm state dict of vit_base_patch16_clip_quickgelu_224.openai
# (a local file; nothing is downloaded). Finetune the result with scripts/finetune/videomamba_middle_k400.sh
# (FINETUNE=$OUTPUT_DIR/checkpoint-latest.pth). Extra flags override the config.
set -euo pipefail
source "$(dirname "$0")/../_launch.sh"
GPUS=${GPUS:-8}
require OUTPUT_DIR "where checkpoints and logs go"
require DATA_PATH "pretraining list (path 0 -1 rows; dataset/combine_pretrained.py or python -m snappix.tools.quickstart_lists make one)"
require DATA_ROOT "folder the list's paths are relative to"
require TEACHER_PATH "the CLIP ViT-B/16 weights file (OpenAI / open_clip / timm layout)"
launch run_pretraining.py --config "$REPO/configs/pretrain/videomamba_middle_distill_k400.yaml" \
  --teacher_path "$TEACHER_PATH" --data_path "$DATA_PATH" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR" "$@"
