"""Build a Kinetics (400/600/700) ``path label`` list from an annotation CSV (official or ``path,label``).

The official annotation CSV (``train.csv`` / ``validate.csv`` of the Kinetics release) has the header
``label,youtube_id,time_start,time_end,split[,is_cc]``. A row's video is looked up in
``--video_dir`` (searched recursively, so both a flat ``preprocess_data.py`` output and
``<class>/`` sub-folders work) under either name:

* ``<youtube_id>_<time_start:06d>_<time_end:06d><ext>`` (the usual downloader name), or
* ``<youtube_id><ext>`` (SnapPix's K400 list convention ``k400/<youtube_id>.mp4``).

Only rows whose file exists are listed (``<path under video_dir> <label>``, so the list is used with
``--data_root VIDEO_DIR``; ``--prefix k400`` writes SnapPix's ``k400/<path>`` rows, used with the folder
that holds ``k400/`` as ``--data_root``); the
others are counted and written to ``<out>.missing.txt``. Labels are the indices of the sorted
unique class names of the CSV, written to ``classes.txt`` next to ``--out``, or the line
numbers (0-based) of ``--classes classes.txt`` (one class name per line). Build the train list
first and pass its ``classes.txt`` to the val list so both share one label map.

The field's ``path,label`` CSV (header ``path,label``, rows ``some/dir/video.mp4,label``, as many
Kinetics downloads and other codebases ship) is converted too: a row's path is taken relative to
``--video_dir`` (an absolute path must lie below it); when no file is there, the video is looked up
by its file name (or ``<stem><ext>``, the name ``preprocess_data.py`` gives) below ``--video_dir``.
Labels that are all whole numbers are kept as the class indices (checked against ``--classes`` when
given); class names become indices as above (sorted names -> ``classes.txt``, or ``--classes``).

Usage examples::

    python dataset/kinetics_list.py --csv kinetics400/train.csv \\
        --video_dir /data/mmdataset/k400 --out lists/K400/train.csv
    python dataset/kinetics_list.py --csv kinetics400/validate.csv \\
        --video_dir /data/mmdataset/k400 --out lists/K400/val.csv --classes lists/K400/classes.txt
    python dataset/kinetics_list.py --csv k400/train.csv \\
        --video_dir /data/k400 --out lists/K400/train.csv            # a 'path,label' CSV
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (USER_ERRORS, InputError, ListFormatError, basename, fail, join_rel,  # noqa: E402
                     require_dir, require_file, stem, write_list, write_text_lines)
from snappix.data.video import find_videos  # noqa: E402  (importable once _common ran)

REQUIRED_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
PATH_LABEL_COLUMNS = ("path", "label")


def read_classes(path: str) -> list[str]:
    """One class name per line (blank lines skipped); line order = label order."""
    require_file(path, "--classes file")
    names, seen = [], {}
    with open(path, "r", encoding="utf-8-sig", newline=None) as f:
        for line_no, line in enumerate(f, start=1):
            name = line.strip()
            if not name:
                continue
            if name in seen:
                raise ListFormatError(f"{path}:{line_no}: class {name!r} already listed at line {seen[name]}")
            seen[name] = line_no
            names.append(name)
    if not names:
        raise InputError(f"{path}: no class names")
    return names


def _seconds(raw: str, what: str, where: str) -> int:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value == value or value < 0 or value != int(value):  # NaN, negative or fractional
        raise ListFormatError(f"{where}: {what} must be a whole number of seconds, got {raw!r}")
    return int(value)


def read_annotations(path: str) -> list[dict]:
    """Annotation CSV -> ``[{'label', 'youtube_id', 'start', 'end', 'where'}, ...]`` (official CSV) or
    ``[{'label', 'path', 'where'}, ...]`` (a ``path,label`` CSV: a header naming ``path`` and ``label``)."""
    require_file(path, "annotation CSV")
    rows = []
    with open(path, "r", encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = None
        for fields in reader:
            where = f"{path}:{reader.line_num}"
            if not any(x.strip() for x in fields):
                continue
            fields = [x.strip() for x in fields]
            if header is None:
                header = fields
                if "youtube_id" not in header and all(c in header for c in PATH_LABEL_COLUMNS):
                    col = {c: header.index(c) for c in PATH_LABEL_COLUMNS}
                    continue
                missing = [c for c in REQUIRED_COLUMNS if c not in header]
                if missing:
                    hint = " (a test split without labels cannot make a labeled list)" \
                        if missing == ["label"] else ""
                    raise ListFormatError(
                        f"{where}: header must name the columns {','.join(REQUIRED_COLUMNS)}"
                        f"[,split,is_cc] (official CSV) or {','.join(PATH_LABEL_COLUMNS)}; missing {missing}"
                        f"{hint}; got {','.join(header)!r}")
                col = {c: header.index(c) for c in REQUIRED_COLUMNS}
                continue
            if len(fields) != len(header):
                raise ListFormatError(f"{where}: expected {len(header)} comma-separated fields "
                                      f"({','.join(header)}), got {len(fields)}: {','.join(fields)!r}")
            if "path" in col:
                label, video = fields[col["label"]], fields[col["path"]]
                if not label or not video:
                    raise ListFormatError(f"{where}: empty path or label in {','.join(fields)!r}")
                rows.append({"label": label, "path": video, "where": where})
                continue
            label, yid = fields[col["label"]], fields[col["youtube_id"]]
            if not label or not yid or any(c.isspace() for c in yid) or "/" in yid:
                raise ListFormatError(f"{where}: empty label or bad youtube_id in {','.join(fields)!r}")
            rows.append({"label": label, "youtube_id": yid,
                         "start": _seconds(fields[col["time_start"]], "time_start", where),
                         "end": _seconds(fields[col["time_end"]], "time_end", where),
                         "where": where})
    if header is None:
        raise ListFormatError(f"{path}: empty file (expected a header line "
                              f"{','.join(REQUIRED_COLUMNS)},split or {','.join(PATH_LABEL_COLUMNS)})")
    return rows


def labels_are_indices(annotations: list[dict]) -> bool:
    """True when every label is a whole number (a ``path,label`` CSV with class indices)."""
    return bool(annotations) and all(a["label"].isdigit() for a in annotations)


def path_under(raw: str, video_dir: str) -> str | None:
    """A ``path,label`` row's path as a POSIX path relative to ``video_dir`` when it names a file there
    (relative paths are taken from ``video_dir``; absolute ones must lie below it), else None."""
    video_dir = os.path.abspath(video_dir)
    p = raw.replace("\\", "/")
    full = os.path.normpath(p if os.path.isabs(p) else os.path.join(video_dir, p))
    rel = os.path.relpath(full, video_dir)
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep) or not os.path.isfile(full):
        return None
    return rel.replace(os.sep, "/")


def index_videos(video_dir: str, ext: str) -> tuple[dict[str, str], int]:
    """File name -> path relative to ``video_dir`` (POSIX) for every ``*ext`` file below it (hidden files
    skipped; found by :func:`snappix.data.video.find_videos`, following folder links).

    Returns the index and the number of names found more than once (the first, in sorted walk
    order, is kept).
    """
    index, repeated = {}, 0
    for path in find_videos(video_dir, (ext,), hidden=False):
        if path.name in index:
            repeated += 1
            continue
        index[path.name] = os.path.relpath(path, video_dir).replace(os.sep, "/")
    return index, repeated


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__[__doc__.index("Usage examples"):],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", required=True, metavar="ANNOT.csv",
                   help="Kinetics annotation CSV: the official one or a 'path,label' CSV")
    p.add_argument("--video_dir", required=True, help="folder of the (processed) videos")
    p.add_argument("--out", required=True, metavar="LIST", help="list file to write ('path label')")
    p.add_argument("--prefix", default="",
                   help="folder prefix of the paths (default: none, paths relative to --video_dir, which is "
                        "then the --data_root; SnapPix's lists: k400, with --data_root the folder above)")
    p.add_argument("--ext", default=".mp4", help="extension of the videos (default: %(default)s)")
    p.add_argument("--classes", metavar="classes.txt",
                   help="class names, one per line, in label order (default: sorted names of the "
                        "CSV, written to classes.txt next to --out; whole-number labels of a "
                        "'path,label' CSV are kept as the indices)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    ext = args.ext if args.ext.startswith(".") else "." + args.ext
    missing_path = args.out + ".missing.txt"
    classes_out = None
    try:
        require_dir(args.video_dir, "--video_dir")
        annotations = read_annotations(args.csv)
        by_index = labels_are_indices(annotations)
        if args.classes:
            classes = read_classes(args.classes)
        elif by_index:
            classes = []  # the CSV's labels are the indices already: no names to write
        else:
            classes = sorted({a["label"] for a in annotations})
            classes_out = os.path.join(os.path.dirname(os.path.abspath(args.out)), "classes.txt")
            if os.path.isfile(classes_out) and read_classes(classes_out) != classes:
                raise InputError(
                    f"{classes_out} exists with a different class list (another split's?); pass "
                    f"--classes {classes_out} to reuse it, or delete it")
        label_of = {c: i for i, c in enumerate(classes)}

        index, repeated = None, 0
        rows, missing, seen, duplicates = [], [], {}, 0
        named_by_id = found_by_name = 0
        for a in annotations:
            if by_index:
                label = int(a["label"])
                if args.classes and label >= len(classes):
                    raise ListFormatError(f"{a['where']}: label {label} is out of range for the "
                                          f"{len(classes)} classes of {args.classes}")
            elif a["label"] not in label_of:
                raise ListFormatError(f"{a['where']}: class {a['label']!r} is not in {args.classes}")
            else:
                label = label_of[a["label"]]
            if "path" in a:  # a 'path,label' CSV
                found = path_under(a["path"], args.video_dir)
                if found is None:
                    if index is None:
                        index, repeated = index_videos(args.video_dir, ext)
                    name = basename(a["path"])
                    found = index.get(name) or index.get(stem(name) + ext)
                    found_by_name += found is not None
                if found is None:
                    missing.append(f"{a['path']}\t{a['label']}\t{a['where']}")
                    continue
                rel = join_rel(args.prefix, found)
                if rel in seen:
                    if seen[rel][1] != label:
                        raise ListFormatError(f"{a['where']}: {a['path']!r} has label {a['label']!r}, but "
                                              f"{seen[rel][0]} gave its video {rel!r} another label")
                    duplicates += 1
                    continue
                seen[rel] = (a["where"], label)
                rows.append((rel, label))
                continue
            if index is None:
                index, repeated = index_videos(args.video_dir, ext)
            full = f"{a['youtube_id']}_{a['start']:06d}_{a['end']:06d}{ext}"
            short = f"{a['youtube_id']}{ext}"
            found = index.get(full)
            if found is None and short in index:
                found, named_by_id = index[short], named_by_id + 1
            if found is None:
                missing.append(f"{full}\t{a['label']}\t{a['where']}")
                continue
            rel = join_rel(args.prefix, found)
            if rel in seen:
                duplicates += 1
                continue
            seen[rel] = (a["where"], label)
            rows.append((rel, label))
        n = write_list(args.out, rows, "cls")
        write_text_lines(missing_path, missing)
        if classes_out:
            write_text_lines(classes_out, classes)
    except USER_ERRORS as e:
        return fail(str(e))

    if by_index and not args.classes:
        print(f"{args.csv}: {len(annotations)} annotated clips, labels given as class indices")
    else:
        print(f"{args.csv}: {len(annotations)} annotated clips, {len(classes)} classes")
    if annotations and "path" in annotations[0]:
        print(f"  wrote {n} rows to {args.out} ({found_by_name} found by file name below {args.video_dir})")
    else:
        print(f"  wrote {n} rows to {args.out} ({named_by_id} found as <youtube_id>{ext})")
    print(f"  {len(missing)} missing videos -> {missing_path}")
    if duplicates:
        print(f"  {duplicates} repeated clips skipped")
    if repeated:
        print(f"warning: {repeated} file names occur in more than one folder of {args.video_dir}; "
              f"the first was used", file=sys.stderr)
    if classes_out:
        print(f"  class names -> {classes_out}")
    root = os.path.abspath(args.video_dir)
    if args.prefix:
        root = f"the folder holding {args.prefix}/ (e.g. {os.path.dirname(root)} if {root} is {args.prefix}/)"
    print(f"  train / check it with --data_root {root}")
    if annotations and n == 0:
        print(f"warning: no video found in {args.video_dir}; wrong --video_dir or --ext?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
