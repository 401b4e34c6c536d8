#!/usr/bin/env bash
# Run the claims studies (docs/results/snappix_miniature.md). Usage: bash scripts/claims.sh [--study NAME] [--fast] ...
# Real clips: SNAPPIX_TEST_VIDEOS=DIR (without them the studies use synthetic clips only and say so).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
python -m snappix.tools.claims "$@"
