#!/usr/bin/env bash
# Finetune recipe configs/finetune/c3d_ucf.yaml; environment as in scripts/finetune/finetune.sh.
exec bash "$(dirname "$0")/finetune.sh" c3d_ucf "$@"
