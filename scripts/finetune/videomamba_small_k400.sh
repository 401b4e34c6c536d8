#!/usr/bin/env bash
# Finetune recipe configs/finetune/videomamba_small_k400.yaml; environment as in scripts/finetune/finetune.sh
# (FINETUNE: VideoMamba's ImageNet-1K or masked-pretrained checkpoint, optional).
exec bash "$(dirname "$0")/finetune.sh" videomamba_small_k400 "$@"
