#!/usr/bin/env bash
# Evaluate every UCF model in turn (see scripts/precise_val/batch.sh): OUT_ROOT=out DATA_PATH=... DATA_ROOT=... bash $0
exec bash "$(dirname "$0")/../batch.sh" UCF "$@"
