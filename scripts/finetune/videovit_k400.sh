#!/usr/bin/env bash
# Finetune recipe configs/finetune/videovit_k400.yaml; environment as in scripts/finetune/finetune.sh.
exec bash "$(dirname "$0")/finetune.sh" videovit_k400 "$@"
