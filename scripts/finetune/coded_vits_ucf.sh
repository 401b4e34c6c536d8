#!/usr/bin/env bash
# Finetune recipe configs/finetune/coded_vits_ucf.yaml; environment as in scripts/finetune/finetune.sh.
exec bash "$(dirname "$0")/finetune.sh" coded_vits_ucf "$@"
