"""Data doctor: check every row of a list file before a long run.

::

    python -m snappix.tools.check_data --data_path train.csv --data_root /data/k400 \\
        --format cls --workers 16 --deep --num_frames 16 --sampling_rate 4 --out checks/train

For each row it checks that the path exists and has the right kind (a file for video rows, a
folder for frame rows), is non-empty, opens, and has a readable frame count and fps. With
``--deep`` every frame is decoded (in chunks of :data:`DEEP_CHUNK`), so a truncated or corrupt
tail is found whatever clip dense sampling picks (any ``--sampling_rate``). A malformed row is
reported as bad with the parser's ``file:line`` message instead of stopping the run.

A video with fewer than ``--num_frames`` frames is a warning (status ``short``): it stays in the
clean list (the samplers repeat frames) but is counted in the summary.

Outputs (``PREFIX`` defaults to the list path):

* ``PREFIX.clean``: the good and short rows, original text, ``\\n`` line endings;
* ``PREFIX.bad.tsv``: ``path <TAB> reason`` for each bad row, ``reason`` = ``kind: detail``;
* ``PREFIX.progress.tsv``: ``line_no <TAB> status <TAB> reason``, appended as results arrive. A
  rerun with the same list and options skips the rows already there (resume after a crash or
  Ctrl-C); a header line records the options, and different options start afresh.

Exit code: 0 when no row is bad, 1 otherwise, 2 for a usage error (e.g. missing list file).

The checks are library code in :mod:`snappix.data.check` (one row) and :mod:`snappix.data.check_list`
(a whole list, and the training entry points' ``--check_data``); this module is their command line.
"""

from __future__ import annotations

import argparse
import os
import sys

from snappix.data.check import (BAD_KINDS, DEEP_CHUNK, STATUSES, check_entry, read_rows,  # noqa: F401  (re-exported)
                                reason_kind)
from snappix.data.check_list import (DataCheckError, check_list, check_lists_for_training,  # noqa: F401
                                     default_workers, load_progress)
from snappix.data.lists import FORMATS

__all__ = ["build_parser", "main", "check_entry", "reason_kind", "read_rows", "load_progress", "DataCheckError",
           "check_lists_for_training", "DEEP_CHUNK", "STATUSES", "BAD_KINDS"]


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and shows every flag's default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m snappix.tools.check_data", description=__doc__,
                                formatter_class=_Formatter)
    p.add_argument("--data_path", required=True, help="the list file to check")
    p.add_argument("--data_root", default="", help="prefix joined to every listed path")
    p.add_argument("--format", default="cls", choices=sorted(FORMATS), help="list format")
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="worker processes (1 = in-process); they exit when this process is killed")
    p.add_argument("--deep", action="store_true", help="decode every frame, not only the header")
    p.add_argument("--num_frames", type=int, default=16, help="frames per clip; fewer = 'short' warning")
    p.add_argument("--sampling_rate", type=int, default=4,
                   help="dense sampling stride (informational: --deep decodes all frames, so every "
                        "stride is covered)")
    p.add_argument("--backend", default=None, choices=["decord", "pyav", "torchcodec"],
                   help="video backend for files (default decord, pyav fallback)")
    p.add_argument("--out", default=None, help="output prefix (default: the list path)")
    p.add_argument("--no_progress", action="store_true", help="no tqdm bar")
    return p


def main(argv=None) -> int:
    """Command-line entry point; returns the exit code (0 all good, 1 bad rows, 2 usage error)."""
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.data_path):
        print(f"check_data: list file not found: {args.data_path}", file=sys.stderr)
        return 2
    report = check_list(args.data_path, args.format, args.data_root, deep=args.deep, num_frames=args.num_frames,
                        backend=args.backend, workers=args.workers, out=args.out, progress=not args.no_progress)
    print(report.summary())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
