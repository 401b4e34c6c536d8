#!/usr/bin/env bash
# Saccade-VSSL retrieval on ucf101 split 1; environment (OUTPUT_DIR, DATA_PATH, DATA_ROOT, CHECKPOINT, MODEL) as in
# scripts/eval/saccade_eval.sh.
exec bash "$(dirname "$0")/saccade_eval.sh" retrieval ucf101 "$@"
