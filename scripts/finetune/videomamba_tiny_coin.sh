#!/usr/bin/env bash
# Finetune recipe configs/finetune/videomamba_tiny_coin.yaml; environment as in scripts/finetune/finetune.sh
# (FINETUNE: a VideoMamba-Ti K400 checkpoint, as the reference starts from).
exec bash "$(dirname "$0")/finetune.sh" videomamba_tiny_coin "$@"
