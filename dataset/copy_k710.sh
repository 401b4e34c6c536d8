#!/usr/bin/env bash
# Gather the K710 training videos (K400 + K600 + K700, processed) into DATA_ROOT/k710_train/,
# one Kinetics version after the other, with copy_k710_data.py.
#
# Usage:
#   bash dataset/copy_k710.sh K710_CSV DATA_ROOT [extra copy_k710_data.py options, e.g. --link]
#
#   K710_CSV    VideoMAEv2's K710 train list ("k4xx/.../name label" rows)
#   DATA_ROOT   folder holding k400_processed/, k600_processed/, k700_processed/ (the outputs
#               of preprocess_data.py); k710_train/ and the copy_*.txt logs are written here
#
# Environment variables (override the defaults derived from the arguments):
#   K710_CSV, DATA_ROOT        instead of the two positional arguments
#   K400_DIR, K600_DIR, K700_DIR   default DATA_ROOT/k{400,600,700}_processed
#   OUTPUT_DIR                 default DATA_ROOT
#   PYTHON                     interpreter to use (default: python, else python3)
#
# Examples:
#   bash dataset/copy_k710.sh lists/k710/train.csv /data/mmdataset
#   bash dataset/copy_k710.sh lists/k710/train.csv "/mnt/my data/mmdataset" --link
#   K400_DIR=/fast/k400_processed bash dataset/copy_k710.sh lists/k710/train.csv /data/mmdataset
#
# Re-running is safe: files already in k710_train/ are skipped.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi

K710_CSV="${1:-${K710_CSV:-}}"
DATA_ROOT="${2:-${DATA_ROOT:-}}"
if [[ $# -ge 2 ]]; then shift 2; else shift $#; fi

if [[ -z "$K710_CSV" || -z "$DATA_ROOT" ]]; then
    echo "error: K710_CSV and DATA_ROOT are required (arguments or environment variables)" >&2
    usage >&2
    exit 2
fi
if [[ ! -f "$K710_CSV" ]]; then
    echo "error: K710 list not found: $K710_CSV" >&2
    exit 2
fi

K400_DIR="${K400_DIR:-$DATA_ROOT/k400_processed}"
K600_DIR="${K600_DIR:-$DATA_ROOT/k600_processed}"
K700_DIR="${K700_DIR:-$DATA_ROOT/k700_processed}"
OUTPUT_DIR="${OUTPUT_DIR:-$DATA_ROOT}"
if [[ -z "${PYTHON:-}" ]]; then
    if command -v python >/dev/null 2>&1; then PYTHON=python; else PYTHON=python3; fi
fi
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

for ktype in k400 k600 k700; do
    case "$ktype" in
        k400) input="$K400_DIR" ;;
        k600) input="$K600_DIR" ;;
        k700) input="$K700_DIR" ;;
    esac
    echo "== $ktype: $input -> $OUTPUT_DIR/k710_train"
    "$PYTHON" "$SCRIPT_DIR/copy_k710_data.py" \
        --csv "$K710_CSV" --ktype "$ktype" --input "$input" --output "$OUTPUT_DIR" "$@"
done
echo "done: $OUTPUT_DIR/k710_train (see $OUTPUT_DIR/copy_failed.txt and copy_duplicated.txt)"
