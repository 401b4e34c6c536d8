"""Convert a Something-Something-V2 list or annotation file to a SnapPix list.

Input (IN), one of:

* a text list in VideoMAE / VideoMAEv2 style, one row per video: ``path label`` or
  ``path num_frames label`` (the first field is the path, the last the 0-based label; the
  path may be a ``.webm`` file or a frame folder). CRLF endings, tabs and repeated spaces are fine.
* the official annotation JSON (``something-something-v2-train.json`` /
  ``-validation.json``: a list of ``{"id": ..., "template": ...}``), when IN ends with ``.json``.
  Labels come from ``--labels something-something-v2-labels.json`` (template with the
  ``[something]`` brackets removed -> label index). Not needed with ``--pretrained``.

Output (OUT), written with ``\\n`` endings:

* ``<prefix>/<stem>.mp4 <label>`` (``cls`` list, for finetuning), or
* ``<prefix>/<stem>.mp4 0 -1`` with ``--pretrained`` (``pretrain`` list: "a video file").

``<stem>`` is the video file name without extension (the SSV2 id), which is the name
``preprocess_data.py`` gives the processed file; ``<prefix>`` defaults to ``ssv2_processed``.

Usage examples::

    python dataset/ssv2_list_process.py videomaev2_lists/ssv2/train.csv lists/SSV2/train.csv
    python dataset/ssv2_list_process.py videomaev2_lists/ssv2/val.csv lists/SSV2_recon/val.csv --pretrained
    python dataset/ssv2_list_process.py annotations/something-something-v2-validation.json \\
        lists/SSV2/val.csv --labels annotations/something-something-v2-labels.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (USER_ERRORS, InputError, ListFormatError, fail, iter_text_rows, join_rel,  # noqa: E402
                     require_file, split_path_and_ints, stem, write_list)

NUM_CLASSES = 174


def _norm_template(text: str) -> str:
    """Template text -> lookup key: brackets removed, whitespace collapsed."""
    return " ".join(text.replace("[", "").replace("]", "").split())


def read_text_list(path: str, need_label: bool = True) -> list[tuple[str, int, str]]:
    """Rows ``path [num_frames] label`` -> ``[(stem, label, 'file:line'), ...]``.

    The integer fields are split off from the right, so the path may contain spaces. With
    ``need_label=False`` (pretraining lists) the last field only has to be an integer, so a
    ``path 0 -1`` pretraining list is accepted as input too.
    """
    rows = []
    expected = "'path label' or 'path num_frames label'"
    for line_no, text in iter_text_rows(path):
        where = f"{path}:{line_no}"
        video, values = split_path_and_ints(text, where, expected, n_ints=(1, 2))
        if len(values) == 2 and values[0] < 0 and need_label:
            raise ListFormatError(f"{where}: num_frames must be >= 0, got {values[0]} in {text!r}")
        if need_label and values[-1] < 0:
            raise ListFormatError(f"{where}: label must be >= 0, got {values[-1]} in {text!r}")
        rows.append((stem(video), values[-1], where))
    return rows


def read_labels_json(path: str) -> dict[str, int]:
    """``something-something-v2-labels.json`` (template -> "index") as normalised-template -> int."""
    require_file(path, "labels file")
    with open(path, "r", encoding="utf-8-sig") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object mapping template -> label index")
    labels = {}
    for template, raw in data.items():
        try:
            index = int(raw)
        except (TypeError, ValueError):
            raise InputError(f"{path}: label of {template!r} is not an integer: {raw!r}") from None
        if index < 0:
            raise InputError(f"{path}: label of {template!r} must be >= 0, got {index}")
        labels[_norm_template(template)] = index
    return labels


def read_annotation_json(path: str, labels: dict[str, int] | None) -> list[tuple[str, int, str]]:
    """Official annotation JSON -> ``[(id, label or 0, 'file entry #i'), ...]``."""
    with open(path, "r", encoding="utf-8-sig") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of {{'id': ..., 'template': ...}} objects")
    by_lower = {k.lower(): v for k, v in labels.items()} if labels is not None else {}
    rows = []
    for i, item in enumerate(data):
        where = f"{path}: entry #{i}"
        if not isinstance(item, dict) or "id" not in item:
            raise ListFormatError(f"{where}: expected an object with an 'id' field, got {item!r:.200}")
        video_id = str(item["id"]).strip()
        if not video_id or re.search(r"\s", video_id):
            raise ListFormatError(f"{where}: bad id {item['id']!r}")
        label = 0
        if labels is not None:
            if "template" not in item:
                raise ListFormatError(
                    f"{where} (id {video_id}): no 'template' field, so no label (the test split has "
                    f"none); use --pretrained for an unlabeled list")
            key = _norm_template(str(item["template"]))
            label = labels.get(key, by_lower.get(key.lower()))
            if label is None:
                raise ListFormatError(
                    f"{where} (id {video_id}): template {item['template']!r} is not in the labels file")
        rows.append((video_id, label, where))
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__[__doc__.index("Usage examples"):],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="VideoMAE(v2) SSV2 list, or the official annotation .json")
    p.add_argument("output", metavar="OUT", help="list file to write")
    p.add_argument("--pretrained", action="store_true",
                   help="write a pretraining list 'path 0 -1' instead of 'path label'")
    p.add_argument("--prefix", default="ssv2_processed",
                   help="folder prefix of the written paths (default: %(default)s)")
    p.add_argument("--labels", metavar="LABELS.json",
                   help="something-something-v2-labels.json (needed for a .json IN without --pretrained)")
    p.add_argument("--ext", default=".mp4", help="extension of the processed videos (default: %(default)s)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        require_file(args.input, "input file")
        if args.input.lower().endswith(".json"):
            if args.labels is None and not args.pretrained:
                raise InputError(f"{args.input} is an annotation JSON: pass --labels "
                                 f"something-something-v2-labels.json (or --pretrained)")
            labels = read_labels_json(args.labels) if args.labels else None
            rows = read_annotation_json(args.input, None if args.pretrained else labels)
        else:
            if args.labels:
                print("note: --labels is only used for a .json input; ignored", file=sys.stderr)
            rows = read_text_list(args.input, need_label=not args.pretrained)

        ext = args.ext if args.ext.startswith(".") else "." + args.ext
        out_rows, first_seen, duplicates = [], {}, []
        for name, label, where in rows:
            rel = join_rel(args.prefix, name + ext)
            if rel in first_seen:
                duplicates.append(f"{where}: {rel} already listed at {first_seen[rel]}")
                continue
            first_seen[rel] = where
            out_rows.append((rel, 0, -1) if args.pretrained else (rel, label))
        n = write_list(args.output, out_rows, "pretrain" if args.pretrained else "cls")
    except USER_ERRORS as e:
        return fail(str(e))

    for msg in duplicates[:10]:
        print(f"warning: duplicate skipped: {msg}", file=sys.stderr)
    if len(duplicates) > 10:
        print(f"warning: ... and {len(duplicates) - 10} more duplicates", file=sys.stderr)
    kind = "pretrain ('path 0 -1')" if args.pretrained else "cls ('path label')"
    print(f"wrote {n} rows to {args.output} [{kind}] from {len(rows)} input rows of {args.input}")
    if not args.pretrained and out_rows:
        labels_used = {r[1] for r in out_rows}
        print(f"  {len(labels_used)} distinct labels, range {min(labels_used)}..{max(labels_used)}")
        if max(labels_used) >= NUM_CLASSES:
            print(f"warning: labels go up to {max(labels_used)} but SSV2 has {NUM_CLASSES} classes",
                  file=sys.stderr)
    if duplicates:
        print(f"  {len(duplicates)} duplicate rows skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
