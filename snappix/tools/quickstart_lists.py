"""Lists for the quickstart's ``--data DIR``: a labelled set from a folder of preprocessed videos.

    python -m snappix.tools.quickstart_lists PREPROCESSED OUT [--val_fraction 0.2] [--train_fraction 0.7]

* Videos in class sub-folders (``PREPROCESSED/<class>/<video>.mp4``): label = sub-folder name (sorted);
  the last ``--val_fraction`` of each class's videos (sorted by name, at least one when the class has
  two or more) go to ``val.csv``. Paths in the lists are relative to OUT (the training scripts' ``--data_root``),
  and never leave it: videos outside OUT are reached through a link ``OUT/videos -> PREPROCESSED``.
* No sub-folders: one class per video, split in time by :func:`snappix.tools.temporal_split.split_folder` (the first
  ``--train_fraction`` of its frames for training, the rest for validation).

Writes ``OUT/train.csv``, ``OUT/val.csv`` (``path label``), ``OUT/pretrain.csv`` and
``OUT/pretrain_val.csv`` (``path 0 -1``: the training / validation clips) and ``OUT/classes.txt``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from snappix.data.lists import read_list, write_lines, write_list
from snappix.data.video import find_videos
from snappix.tools import temporal_split


def class_folders(root: Path) -> dict[str, list[Path]]:
    """``{class name: sorted videos}`` for the sub-folders of ``root`` that hold videos (recursively)."""
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        videos = sorted(p for p in find_videos(sub, follow_links=False) if p.is_file())
        if videos:
            out[sub.name] = videos
    return out


def _inside(root: Path, out: Path) -> Path:
    """``root`` itself when it lies inside ``out``, else the link ``out/videos`` pointing to it (created).

    Raises:
        SystemExit: ``out/videos`` exists and is something else.
    """
    root_abs, out_abs = Path(os.path.abspath(root)), Path(os.path.abspath(out))
    if os.path.commonpath([root_abs, out_abs]) == str(out_abs):
        return root
    link = out / "videos"
    if link.is_symlink() and link.resolve() == root.resolve():
        return link
    if link.exists() or link.is_symlink():
        raise SystemExit(f"{link} exists and is not a link to {root}; choose another OUT folder")
    os.symlink(root_abs, link, target_is_directory=True)
    return link


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", help="folder of preprocessed videos")
    p.add_argument("out_dir")
    p.add_argument("--val_fraction", type=float, default=0.2, help="sub-folder mode: share of each class for val")
    p.add_argument("--train_fraction", type=float, default=0.7, help="temporal-split mode: share of frames for train")
    args = p.parse_args(argv)
    root, out = Path(args.videos), Path(args.out_dir)
    if not root.is_dir():
        raise SystemExit(f"{root}: not a folder")
    classes = class_folders(root)
    out.mkdir(parents=True, exist_ok=True)
    if len(classes) >= 2:
        base = _inside(root, out)
        classes = {name: [base / v.relative_to(root) for v in videos] for name, videos in classes.items()}
        train, val = [], []
        for label, (name, videos) in enumerate(classes.items()):
            n_val = max(1, int(round(len(videos) * args.val_fraction))) if len(videos) >= 2 else 0
            rel = [os.path.relpath(v, out) for v in videos]
            train += [(r, label) for r in rel[:len(rel) - n_val]]
            val += [(r, label) for r in rel[len(rel) - n_val:]]
            print(f"  class {label}: {name}: {len(rel) - n_val} train + {n_val} val videos")
        if not val:
            raise SystemExit(f"{root}: every class has a single video; nothing to validate on "
                             "(put the videos in one folder for a temporal split instead)")
        names = list(classes)
        write_list(out / "train.csv", train, "cls")
        write_list(out / "val.csv", val, "cls")
        write_lines(out / "classes.txt", names)
    else:
        if len(classes) == 1:
            print(f"{root}: one class sub-folder only; using one class per video with a temporal split")
            flat = out / "_flat"
            flat.mkdir(exist_ok=True)
            for v in next(iter(classes.values())):
                link = flat / v.name
                if not link.exists():
                    os.symlink(v.resolve(), link)
            root = flat
        temporal_split.split_folder(root, out, args.train_fraction)
        train = [(e.rel_path, e.label) for e in read_list(out / "train.csv", "cls")]
    write_list(out / "pretrain.csv", [(r, 0, -1) for r, _ in train], "pretrain")
    val_rows = [(e.rel_path, 0, -1) for e in read_list(out / "val.csv", "cls")]
    write_list(out / "pretrain_val.csv", val_rows, "pretrain")
    print(f"lists in {out}: train.csv, val.csv, pretrain.csv, pretrain_val.csv, classes.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
