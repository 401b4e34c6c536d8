#!/usr/bin/env bash
# Finetune recipe configs/finetune/coded_vitb_k400.yaml; environment as in scripts/finetune/finetune.sh.
exec bash "$(dirname "$0")/finetune.sh" coded_vitb_k400 "$@"
