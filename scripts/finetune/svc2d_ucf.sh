#!/usr/bin/env bash
# Finetune recipe configs/finetune/svc2d_ucf.yaml; environment as in scripts/finetune/finetune.sh.
exec bash "$(dirname "$0")/finetune.sh" svc2d_ucf "$@"
