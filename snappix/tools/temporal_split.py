"""One class per video, split in time: a small labelled set from a folder of (preprocessed) videos.

Each video becomes its own class (label = index in sorted order); its first ``--train_fraction`` of
frames are written as the training clip, the rest as the validation clip (lossless grey H.264), and
``train.csv`` / ``val.csv`` (``path label``) plus ``classes.txt`` are written to OUT::

    python -m snappix.tools.temporal_split VIDEOS OUT --train_fraction 0.7

Used for the finetuning sanity run on the real test clips (``$SNAPPIX_TEST_VIDEOS``) and by the
quickstart's ``--data DIR`` when the folder has no class sub-folders.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from snappix.data.lists import write_lines, write_list
from snappix.data.video import VIDEO_SUFFIXES, open_video
from snappix.data.video_writer import GrayVideoWriter


def split_video(src: Path, train_dst: Path, val_dst: Path, train_fraction: float) -> tuple[int, int]:
    """Write the first ``train_fraction`` of ``src``'s frames (channel 0) to ``train_dst``, the rest to ``val_dst``.

    Returns:
        frame counts ``(train, val)``.

    Raises:
        ValueError: a video too short to give both parts at least one frame.
    """
    with open_video(src) as reader:
        n, fps = reader.num_frames, reader.fps or 25.0
        frames = reader.get_frames(range(n))[..., 0]
    cut = int(round(n * train_fraction))
    if not 0 < cut < n:
        raise ValueError(f"{src}: {n} frames cannot be split at {train_fraction:.0%}")
    for dst, part in ((train_dst, frames[:cut]), (val_dst, frames[cut:])):
        dst.parent.mkdir(parents=True, exist_ok=True)
        with GrayVideoWriter(dst, fps, part.shape[1], part.shape[2]) as writer:
            for frame in part:
                writer.write(frame)
    return cut, n - cut


def split_folder(videos: str | os.PathLike, out_dir: str | os.PathLike, train_fraction: float = 0.7) -> int:
    """One class per video of the folder ``videos`` (not recursive; suffixes in :data:`VIDEO_SUFFIXES`), each
    split in time by :func:`split_video` into ``out_dir/train`` and ``out_dir/val``; writes ``train.csv``,
    ``val.csv`` (``path label``) and ``classes.txt`` to ``out_dir`` and prints one line per class.

    Returns:
        the number of classes (videos).

    Raises:
        SystemExit: no video in ``videos`` (the message names the suffixes looked for).
        ValueError: a video too short to split (:func:`split_video`).
    """
    sources = sorted(f for f in Path(videos).iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
    if not sources:
        raise SystemExit(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {videos}")
    out = Path(out_dir)
    train_rows, val_rows, names = [], [], []
    for label, src in enumerate(sources):
        name = src.name.replace(os.sep, "_")
        n_train, n_val = split_video(src, out / "train" / f"{name}.mp4", out / "val" / f"{name}.mp4",
                                     train_fraction)
        train_rows.append((f"train/{name}.mp4", label))
        val_rows.append((f"val/{name}.mp4", label))
        names.append(src.stem)
        print(f"  class {label}: {src.name}: {n_train} train + {n_val} val frames")
    write_list(out / "train.csv", train_rows, "cls")
    write_list(out / "val.csv", val_rows, "cls")
    write_lines(out / "classes.txt", names)
    print(f"{len(sources)} classes -> {out}/train.csv, {out}/val.csv, {out}/classes.txt")
    return len(sources)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", help="folder of videos (one class each)")
    p.add_argument("out_dir")
    p.add_argument("--train_fraction", type=float, default=0.7)
    args = p.parse_args(argv)
    split_folder(args.videos, args.out_dir, args.train_fraction)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
