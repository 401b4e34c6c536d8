"""Command line of ``preprocess_data.py``: flags, the run, the printed summary and the exit status.

The conversion itself is :func:`snappix.tools.preprocess.preprocess_tree`; the reports it writes are
described in :mod:`snappix.tools.preprocess_report`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from snappix.engine.cli import add_debug_arg, user_errors
from snappix.data.video import parse_formats
from snappix.data.video_writer import CODECS
from snappix.tools.preprocess import preprocess_tree


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and shows every flag's default."""


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``preprocess_data.py`` (SnapPix's flags plus ours)."""
    p = argparse.ArgumentParser(
        prog="preprocess_data.py", formatter_class=_Formatter, allow_abbrev=False,
        description="SnapPix preprocessing: each video -> linear-intensity grey .mp4 with short side 112 "
        "(sRGB->linear LUT, bilinear resize, BGR2GRAY; SnapPix DAC'25).",
    )
    p.add_argument("input", metavar="IN", help="input folder, walked recursively")
    p.add_argument("output", metavar="OUT", help="output folder (created)")
    p.add_argument("--input_format", default=".mp4",
                   help="suffix(es) of the input videos, e.g. .webm or .mp4,.avi")
    p.add_argument("--short_side", type=int, default=112, help="output short side in pixels")
    p.add_argument("--cores", type=int, default=min(8, os.cpu_count() or 1),
                   help="worker processes (default here: min(8, cpu count))")
    p.add_argument("--codec", choices=CODECS, default="libx264",
                   help="libx264: lossless H.264 grey, exact; mp4v: SnapPix's lossy OpenCV codec")
    p.add_argument("--preset", default="medium", help="x264 preset, speed vs file size; lossless either way")
    p.add_argument("--flat", action="store_true", help="write OUT/<stem>.mp4 (SnapPix layout); collisions are skipped")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--verify", action="store_true", help="decode every output with decord before accepting it")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 if any video failed or none was found; a video that decodes to fewer "
                        "frames than its header says is then a failure (not converted) instead of a partial output")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_debug_arg(p)
    return p


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0, or 1 with ``--strict`` after failures; 2 for bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    in_root, out_root = Path(args.input), Path(args.output)
    if not in_root.exists():
        parser.error(f"input folder does not exist: {in_root}")
    if not in_root.is_dir():
        parser.error(f"input must be a folder: {in_root}")
    try:
        formats = parse_formats(args.input_format)
    except ValueError as exc:
        parser.error(str(exc))
    if args.short_side < 1 or args.cores < 1:
        parser.error("--short_side and --cores must be >= 1")

    summary = preprocess_tree(
        in_root, out_root, formats, short_side=args.short_side, flat=args.flat, codec=args.codec,
        preset=args.preset, cores=args.cores, overwrite=args.overwrite, verify=args.verify,
        progress=not args.no_progress, allow_partial=not args.strict,
    )
    print(f"preprocess {in_root} -> {out_root} ({', '.join(formats)}, codec {args.codec}):")
    for line in summary.lines(out_root):
        print("  " + line)
    if summary.found == 0:
        print(f"warning: no {'/'.join(formats)} files under {in_root}", file=sys.stderr)
    if args.strict and (summary.failed or summary.found == 0):
        return 1
    return 0
