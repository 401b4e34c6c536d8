"""Build ``train.csv`` / ``val.csv`` (``path label`` lists) for UCF101 or HMDB51 from the
official split files.

UCF101 (``--splits_dir`` = the ``ucfTrainTestlist`` folder):

* ``classInd.txt``: ``1 ApplyEyeMakeup`` ... -> label = index - 1 (0..100);
* ``trainlist0<k>.txt``: ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1`` (checked against the
  class folder);
* ``testlist0<k>.txt``: ``ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`` (label from the folder).

HMDB51 (``--splits_dir`` = the ``testTrainMulti_7030_splits`` folder):

* ``<class>_test_split<k>.txt``: ``video.avi 1|2|0`` = train | test | unused;
* classes sorted alphabetically -> labels 0..50.

Rows are ``<prefix>/<video stem><ext>`` (SnapPix convention: flat, ``.avi`` -> ``.mp4``, the
name ``preprocess_data.py`` writes), or ``<prefix>/<Class>/<video stem><ext>`` with
``--keep_dirs``. Also writes ``classes.txt`` (one class name per line, line i = label i-1).
Lists use ``\\n`` line endings.

Usage examples::

    python dataset/build_ucf_hmdb_lists.py --dataset ucf101 --splits_dir ucfTrainTestlist \\
        --out_dir lists/UCF                     # -> ucf/v_ApplyEyeMakeup_g08_c01.mp4 0
    python dataset/build_ucf_hmdb_lists.py --dataset hmdb51 \\
        --splits_dir testTrainMulti_7030_splits --out_dir lists/HMDB51 --split 2
"""

from __future__ import annotations

import argparse
import os
import re
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (USER_ERRORS, InputError, ListFormatError, fail, iter_text_rows,  # noqa: E402
                     join_rel, parse_int, require_dir, stem, write_list, write_text_lines)

NUM_CLASSES = {"ucf101": 101, "hmdb51": 51}
DEFAULT_PREFIX = {"ucf101": "ucf", "hmdb51": "hmdb"}
# where the split files usually sit inside an extracted archive
SPLIT_SUBDIRS = {"ucf101": "ucfTrainTestlist", "hmdb51": "testTrainMulti_7030_splits"}

Row = tuple[str, str, int, str]  # (class name, video path in the split file, label, 'file:line')


def _locate(splits_dir: str, dataset: str, probe: str) -> str:
    """``splits_dir`` itself, or its official sub-folder when ``probe`` matches only there."""
    require_dir(splits_dir, "--splits_dir")
    inner = os.path.join(splits_dir, SPLIT_SUBDIRS[dataset])
    if not _has(splits_dir, probe) and os.path.isdir(inner) and _has(inner, probe):
        return inner
    return splits_dir


def _has(d: str, probe: str) -> bool:
    return any(re.fullmatch(probe, n) for n in os.listdir(d))


def read_ucf_classes(path: str) -> list[str]:
    """``classInd.txt`` -> class names in label order (index 1 -> label 0)."""
    by_index = {}
    for line_no, text in iter_text_rows(path):
        where = f"{path}:{line_no}"
        fields = text.split(None, 1)
        if len(fields) != 2:
            raise ListFormatError(f"{where}: expected 'index ClassName', got {text!r}")
        index = parse_int(fields[0], "class index", where, text, minimum=1)
        if index in by_index:
            raise ListFormatError(f"{where}: class index {index} already defined")
        by_index[index] = fields[1].strip()
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise InputError(f"{path}: class indices must be 1..N without gaps, got {sorted(by_index)[:5]}...")
    return [by_index[i] for i in range(1, len(by_index) + 1)]


def read_ucf_split(path: str, classes: list[str], labeled: bool) -> list[Row]:
    exact = {c: i for i, c in enumerate(classes)}
    folded = {c.lower(): i for i, c in enumerate(classes)}  # classInd says HandstandPushups, files HandStand...
    expected = "'Class/video.avi label'" if labeled else "'Class/video.avi'"
    rows = []
    for line_no, text in iter_text_rows(path):
        where = f"{path}:{line_no}"
        fields = text.rsplit(None, 1)
        if len(fields) == 2 and re.fullmatch(r"[+-]?\d+", fields[1]):
            video = fields[0]
            file_label = parse_int(fields[1], "label", where, text, minimum=1) - 1
        elif labeled:
            raise ListFormatError(f"{where}: expected {expected}, got {text!r}")
        else:  # the official test lists have no label: it comes from the class folder
            video, file_label = text, None
        parts = video.replace("\\", "/").split("/")
        if len(parts) < 2:
            raise ListFormatError(f"{where}: expected {expected} with a class folder, got {text!r}")
        cls = parts[-2]
        label = exact.get(cls, folded.get(cls.lower()))
        if label is None:
            raise ListFormatError(f"{where}: class folder {cls!r} is not in classInd.txt")
        if file_label is not None and file_label != label:
            raise ListFormatError(
                f"{where}: label {file_label + 1} does not match class folder {cls!r} "
                f"(classInd index {label + 1})")
        rows.append((cls, video, label, where))  # the folder as written: it is the one on disk
    return rows


def build_ucf(splits_dir: str, split: int) -> tuple[list[str], list[Row], list[Row]]:
    d = _locate(splits_dir, "ucf101", r"classInd\.txt")
    classes = read_ucf_classes(os.path.join(d, "classInd.txt"))
    train = read_ucf_split(os.path.join(d, f"trainlist{split:02d}.txt"), classes, labeled=True)
    test = read_ucf_split(os.path.join(d, f"testlist{split:02d}.txt"), classes, labeled=False)
    return classes, train, test


def build_hmdb(splits_dir: str, split: int) -> tuple[list[str], list[Row], list[Row]]:
    pattern = rf"(.+)_test_split{split}\.txt"
    d = _locate(splits_dir, "hmdb51", pattern)
    files = {}
    for name in os.listdir(d):
        m = re.fullmatch(pattern, name)
        if m:
            files[m.group(1)] = os.path.join(d, name)
    if not files:
        raise InputError(f"no '<class>_test_split{split}.txt' files in {d}")
    classes = sorted(files)
    train, test = [], []
    for label, cls in enumerate(classes):
        path = files[cls]
        for line_no, text in iter_text_rows(path):
            where = f"{path}:{line_no}"
            fields = text.rsplit(None, 1)
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ListFormatError(f"{where}: expected 'video.avi 0|1|2' (1=train, 2=test, "
                                      f"0=unused), got {text!r}")
            video, flag = fields
            if flag == "1":
                train.append((cls, video, label, where))
            elif flag == "2":
                test.append((cls, video, label, where))
    return classes, train, test


def to_list_rows(rows: list[Row], prefix: str, ext: str, keep_dirs: bool
                 ) -> tuple[list[tuple[str, int]], list[str]]:
    """Split-file rows -> (list rows, duplicate messages); a repeated output path keeps its first row."""
    out, seen, dups = [], {}, []
    for cls, video, label, where in rows:
        name = stem(video) + ext
        rel = join_rel(prefix, cls, name) if keep_dirs else join_rel(prefix, name)
        if rel in seen:
            dups.append(f"{where}: {rel} already listed at {seen[rel]}")
            continue
        seen[rel] = where
        out.append((rel, label))
    return out, dups


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__[__doc__.index("Usage examples"):],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(NUM_CLASSES))
    p.add_argument("--splits_dir", required=True,
                   help="ucfTrainTestlist/ (UCF101) or testTrainMulti_7030_splits/ (HMDB51)")
    p.add_argument("--out_dir", required=True, help="where train.csv, val.csv, classes.txt are written")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (default: 1)")
    p.add_argument("--prefix", default=None,
                   help="folder prefix of the paths (default: ucf for ucf101, hmdb for hmdb51; '' for none)")
    p.add_argument("--ext", default=".mp4", help="extension of the processed videos (default: %(default)s)")
    p.add_argument("--keep_dirs", action="store_true",
                   help="write <prefix>/<Class>/<video> instead of the flat <prefix>/<video>")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    prefix = DEFAULT_PREFIX[args.dataset] if args.prefix is None else args.prefix
    ext = args.ext if args.ext.startswith(".") or not args.ext else "." + args.ext
    try:
        build = build_ucf if args.dataset == "ucf101" else build_hmdb
        classes, train, test = build(args.splits_dir, args.split)
        train_rows, dups = to_list_rows(train, prefix, ext, args.keep_dirs)
        val_rows, val_dups = to_list_rows(test, prefix, ext, args.keep_dirs)
        dups += val_dups
        train_paths = {r[0] for r in train_rows}
        overlap = [r[0] for r in val_rows if r[0] in train_paths]
        if overlap:
            raise InputError(f"{len(overlap)} videos are in both the train and the test split, "
                             f"e.g. {overlap[0]}")
        n_train = write_list(os.path.join(args.out_dir, "train.csv"), train_rows, "cls")
        n_val = write_list(os.path.join(args.out_dir, "val.csv"), val_rows, "cls")
        write_text_lines(os.path.join(args.out_dir, "classes.txt"), classes)
    except USER_ERRORS as e:
        return fail(str(e))

    for msg in dups[:10]:
        print(f"warning: duplicate path skipped (use --keep_dirs?): {msg}", file=sys.stderr)
    if len(classes) != NUM_CLASSES[args.dataset]:
        print(f"warning: {len(classes)} classes found, {args.dataset} has {NUM_CLASSES[args.dataset]}",
              file=sys.stderr)
    print(f"{args.dataset} split {args.split}: {len(classes)} classes")
    print(f"  wrote {n_train} rows to {os.path.join(args.out_dir, 'train.csv')}")
    print(f"  wrote {n_val} rows to {os.path.join(args.out_dir, 'val.csv')}")
    print(f"  class names in {os.path.join(args.out_dir, 'classes.txt')}")
    if dups:
        print(f"  {len(dups)} duplicate paths skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
