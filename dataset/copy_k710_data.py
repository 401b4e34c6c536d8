"""Gather the processed videos of one Kinetics version listed in the K710 list into
``OUTPUT/k710_train/`` (the folder ``combine_pretrained.py``'s ``k710_train/<name>`` rows point at).

Rows of the K710 list look like ``k4xx/.../name label`` (``path 0 -1`` is accepted too); only the
rows whose path has a ``--ktype`` component are handled. ``<INPUT>/<name>`` (or ``<stem>.mp4``,
``preprocess_data.py``'s output name) is copied, or with ``--link`` hard-linked (falling back to a
symlink across file systems) or symlinked (``--link symlink``).

Resumable: a file already in ``k710_train/`` that is the same file (link) or has the same size
(copy) is skipped; copies go through a temporary name, so an interrupted run leaves no truncated
file behind. A name already taken by a *different* file (another Kinetics version's video of
the same name) is not overwritten.

Logs in OUTPUT (tab-separated ``ktype  reason  path  list:line``, ``\\n`` endings; each run
replaces only its own ktype's lines, so the three runs of ``copy_k710.sh`` share the files):

* ``copy_failed.txt``: listed videos not found in INPUT;
* ``copy_duplicated.txt``: names listed twice, or already taken by a different file.

Usage examples::

    python dataset/copy_k710_data.py --csv lists/k710/train.csv --ktype k400 \\
        --input /data/mmdataset/k400_processed --output /data/mmdataset
    python dataset/copy_k710_data.py --csv lists/k710/train.csv --ktype k600 \\
        --input /data/mmdataset/k600_processed --output /data/mmdataset --link
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (KINETICS_VERSIONS, USER_ERRORS, basename, fail, find_processed,  # noqa: E402
                     iter_k710_rows, progress, require_dir, write_text_lines)

FAILED_LOG = "copy_failed.txt"
DUPLICATED_LOG = "copy_duplicated.txt"


def read_rows(csv_path: str, ktype: str) -> tuple[list[tuple[str, str]], int]:
    """``[(name, 'csv:line'), ...]`` of the rows of ``ktype``, and the number of other rows."""
    rows, others = [], 0
    for version, path, where in iter_k710_rows(csv_path):
        if version == ktype:
            rows.append((basename(path), where))
        else:
            others += 1
    return rows, others


def already_there(src: str, dst: str, mode: str) -> bool:
    """True when ``dst`` already holds ``src`` (same file for links, same size for copies)."""
    try:
        if os.path.samefile(src, dst):
            return True
    except OSError:
        return False
    return mode == "copy" and os.path.getsize(src) == os.path.getsize(dst)


def place(src: str, dst: str, mode: str) -> str:
    """Copy / link ``src`` to ``dst``; returns what was done (``copy``, ``hard``, ``symlink``)."""
    if mode == "hard":
        try:
            os.link(src, dst)
            return "hard"
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            mode = "symlink"  # another file system (or no hard links there): fall back
    if mode == "symlink":
        os.symlink(os.path.abspath(src), dst)
        return "symlink"
    tmp = os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}.partial")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)
    return "copy"


def update_log(path: str, ktype: str, new_lines: list[str]) -> None:
    """Replace ``ktype``'s lines in the log at ``path`` by ``new_lines``, keep the other versions'."""
    kept = []
    if os.path.isfile(path):
        with open(path, "r", encoding="utf-8", newline=None) as f:
            kept = [ln.rstrip("\n") for ln in f if ln.strip() and not ln.startswith(ktype + "\t")]
    write_text_lines(path, kept + new_lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__[__doc__.index("Usage examples"):],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", required=True, help="K710 list ('k4xx/.../name label')")
    p.add_argument("--ktype", required=True, choices=KINETICS_VERSIONS, help="Kinetics version to gather")
    p.add_argument("--input", required=True, help="processed videos of that version (flat folder)")
    p.add_argument("--output", required=True,
                   help="data root: videos go to OUTPUT/<subdir>/, logs to OUTPUT/")
    p.add_argument("--link", nargs="?", const="hard", choices=("hard", "symlink"), default=None,
                   help="link instead of copying: 'hard' (the default for a bare --link; symlink "
                        "across file systems) or 'symlink'")
    p.add_argument("--subdir", default="k710_train", help="folder under OUTPUT (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    mode = args.link or "copy"
    dest_dir = os.path.join(args.output, args.subdir)
    counts = {"copy": 0, "hard": 0, "symlink": 0, "present": 0}
    failed, duplicated = [], []
    try:
        require_dir(args.input, "--input")
        rows, others = read_rows(args.csv, args.ktype)
        os.makedirs(dest_dir, exist_ok=True)
        done: dict[str, str] = {}
        for name, where in progress(rows, desc=f"{args.ktype} -> {args.subdir}", unit="video",
                                    disable=args.quiet or None):
            actual = find_processed(args.input, name)
            if actual is None:
                failed.append(f"{args.ktype}\tmissing\t{os.path.join(args.input, name)}\t{where}")
                continue
            if actual in done:
                duplicated.append(f"{args.ktype}\trepeated in list (first at {done[actual]})\t"
                                  f"{actual}\t{where}")
                continue
            done[actual] = where
            src, dst = os.path.join(args.input, actual), os.path.join(dest_dir, actual)
            if os.path.lexists(dst):
                if already_there(src, dst, mode):
                    counts["present"] += 1
                    continue
                if os.path.islink(dst) and not os.path.exists(dst):
                    os.remove(dst)  # a dangling link from an earlier run: redo it
                else:
                    duplicated.append(f"{args.ktype}\texists as a different file\t{dst}\t{where}")
                    continue
            counts[place(src, dst, mode)] += 1
        update_log(os.path.join(args.output, FAILED_LOG), args.ktype, failed)
        update_log(os.path.join(args.output, DUPLICATED_LOG), args.ktype, duplicated)
    except USER_ERRORS as e:
        return fail(str(e))

    placed = counts["copy"] + counts["hard"] + counts["symlink"]
    print(f"{args.ktype}: {len(rows)} rows in {args.csv} ({others} rows of other versions ignored)")
    print(f"  {counts['copy']} copied, {counts['hard']} hard-linked, {counts['symlink']} symlinked, "
          f"{counts['present']} already present -> {dest_dir}")
    print(f"  {len(failed)} missing (logged to {os.path.join(args.output, FAILED_LOG)}), "
          f"{len(duplicated)} duplicates (logged to {os.path.join(args.output, DUPLICATED_LOG)})")
    if rows and placed + counts["present"] == 0:
        print(f"warning: none of the {len(rows)} {args.ktype} videos was found in {args.input}; "
              f"wrong --input?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
