#!/usr/bin/env python
"""SnapPix decorrelation training: learn a coded-exposure pattern whose coded pixels are decorrelated.

Thin entry point: :func:`snappix.decorrelation.cli.main` (flags) -> :func:`snappix.decorrelation.run.run`.
Modes (SnapPix's flags):

    python run_decorrelation_training.py --data_path LIST_OR_FOLDER --output_dir OUT [--patch_norm_coded] ...
    python run_decorrelation_training.py --data_path ... --only_run_two_baselines
    python run_decorrelation_training.py --data_path ... --test_pattern --pattern pattern_4.pth --output_dir OUT

See ``docs/decorrelation_protocol.md`` for the evaluation protocol and the reference numbers, and
``python run_decorrelation_training.py -h`` for every flag.
"""
import sys

from snappix.decorrelation.cli import main

if __name__ == "__main__":
    sys.exit(main())
