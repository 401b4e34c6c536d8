#!/usr/bin/env bash
# Create/reuse .venv, install snappix and its requirements, run the test suite.
# Usage: bash scripts/test.sh [pytest args...]   (e.g. -m slow, -k sensor)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
python -m pytest "$@"
