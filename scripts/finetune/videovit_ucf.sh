#!/usr/bin/env bash
# Finetune recipe configs/finetune/videovit_ucf.yaml; environment as in scripts/finetune/finetune.sh.
exec bash "$(dirname "$0")/finetune.sh" videovit_ucf "$@"
