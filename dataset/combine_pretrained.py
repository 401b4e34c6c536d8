"""Build SnapPix's K710 + SSV2 pretraining list (``pretrained_combine.csv``).

For each row of the K710 list (``k4xx/.../name label``, VideoMAEv2's K710 train list; a
``path 0 -1`` row is accepted too) the path component ``k400`` / ``k600`` / ``k700`` tells the
Kinetics version; the row becomes ``k710_train/<name> 0 -1`` when ``<K4xx_DIR>/<name>`` exists
(or ``<stem>.mp4``, the name ``preprocess_data.py`` gives a non-mp4 source). For each row of the
SSV2 list (``path [num_frames] label``, e.g. the output of ``ssv2_list_process.py``) the row
becomes ``ssv2_processed/<stem>.mp4 0 -1`` when ``<SSV2_DIR>/<stem>.mp4`` exists.

Writes, in OUTDIR:

* ``pretrained_combine.csv``: the ``pretrain`` list (``path 0 -1``, ``\\n`` endings), K710 rows
  first, then SSV2 rows, each name at most once;
* ``gen_list_failed.log``: one line per skipped row, ``<reason>\\t<detail>\\t<list>:<line>``, with
  reason ``missing`` (the file that was looked for) or ``duplicate`` (the list path already emitted).

The K710 videos themselves are gathered into ``<data_root>/k710_train/`` by ``copy_k710.sh``.

Usage example::

    python dataset/combine_pretrained.py lists/k710/train.csv lists/SSV2/train.csv \\
        /data/mmdataset/k400_processed /data/mmdataset/k600_processed \\
        /data/mmdataset/k700_processed /data/mmdataset/ssv2_processed lists/
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (KINETICS_VERSIONS, USER_ERRORS, basename, fail, find_processed, iter_k710_rows,  # noqa: E402
                     iter_text_rows, join_rel, require_dir, split_path_and_ints, stem, write_list,
                     write_text_lines)

LIST_NAME = "pretrained_combine.csv"
LOG_NAME = "gen_list_failed.log"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__[__doc__.index("Usage example"):],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("k710_csv", metavar="K710_CSV", help="K710 train list ('k4xx/.../name label')")
    p.add_argument("ssv2_csv", metavar="SSV2_CSV", help="SSV2 train list ('path [num_frames] label')")
    p.add_argument("k400_dir", metavar="K400_DIR", help="processed K400 videos (flat folder)")
    p.add_argument("k600_dir", metavar="K600_DIR", help="processed K600 videos")
    p.add_argument("k700_dir", metavar="K700_DIR", help="processed K700 videos")
    p.add_argument("ssv2_dir", metavar="SSV2_DIR", help="processed SSV2 videos")
    p.add_argument("outdir", metavar="OUTDIR", help=f"where {LIST_NAME} and {LOG_NAME} are written")
    p.add_argument("--k710_prefix", default="k710_train", help="prefix of K710 rows (default: %(default)s)")
    p.add_argument("--ssv2_prefix", default="ssv2_processed",
                   help="prefix of SSV2 rows (default: %(default)s)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    dirs = {"k400": args.k400_dir, "k600": args.k600_dir, "k700": args.k700_dir}
    rows: list[tuple[str, int, int]] = []
    log: list[str] = []
    first_seen: dict[str, str] = {}
    found, missing, dup = Counter(), Counter(), Counter()

    def emit(rel: str, where: str, source: str) -> None:
        if rel in first_seen:
            log.append(f"duplicate\t{rel}\t{where} (first at {first_seen[rel]})")
            dup[source] += 1
        else:
            first_seen[rel] = where
            rows.append((rel, 0, -1))
            found[source] += 1

    try:
        for d, what in [(args.k400_dir, "K400_DIR"), (args.k600_dir, "K600_DIR"),
                        (args.k700_dir, "K700_DIR"), (args.ssv2_dir, "SSV2_DIR")]:
            require_dir(d, what)
        for version, path, where in iter_k710_rows(args.k710_csv):
            name = basename(path)
            actual = find_processed(dirs[version], name)
            if actual is None:
                log.append(f"missing\t{os.path.join(dirs[version], name)}\t{where}")
                missing[version] += 1
            else:
                emit(join_rel(args.k710_prefix, actual), where, version)

        expected = "'path label', 'path num_frames label' or 'path 0 -1'"
        for line_no, text in iter_text_rows(args.ssv2_csv):
            where = f"{args.ssv2_csv}:{line_no}"
            path, _ = split_path_and_ints(text, where, expected)
            name = stem(path) + ".mp4"
            if os.path.isfile(os.path.join(args.ssv2_dir, name)):
                emit(join_rel(args.ssv2_prefix, name), where, "ssv2")
            else:
                log.append(f"missing\t{os.path.join(args.ssv2_dir, name)}\t{where}")
                missing["ssv2"] += 1

        out_list = os.path.join(args.outdir, LIST_NAME)
        out_log = os.path.join(args.outdir, LOG_NAME)
        n = write_list(out_list, rows, "pretrain")
        write_text_lines(out_log, log)
    except USER_ERRORS as e:
        return fail(str(e))

    print(f"wrote {n} rows to {out_list}")
    for source in (*KINETICS_VERSIONS, "ssv2"):
        print(f"  {source:5s}: {found[source]:8d} listed, {missing[source]:8d} missing, "
              f"{dup[source]:8d} duplicates skipped")
    print(f"  {len(log)} skipped rows logged to {out_log}")
    if n == 0:
        print("warning: no listed video was found; check the directory arguments", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
