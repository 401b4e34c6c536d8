"""Write the embedded synthetic dataset (see :mod:`snappix.data.synthetic`).

    python -m snappix.tools.make_synthetic OUT --num_videos 480 --seed 0 [--classes direction|shape]

Writes ``OUT/videos/*.mp4``, ``OUT/train.csv``, ``OUT/val.csv``, ``OUT/pretrain.csv`` and
``OUT/classes.txt``. The same seed gives the same clips on every machine with the same PyAV/x264.
"""

from __future__ import annotations

import argparse
import os

from snappix.data.synthetic import CLASSES, make_dataset


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--num_videos", type=int, default=480, help="clips in all (classes balanced)")
    p.add_argument("--num_frames", type=int, default=32, help="frames per clip (25 fps)")
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--val_fraction", type=float, default=0.2, help="share of each class held out for val.csv")
    p.add_argument("--classes", default="direction", choices=sorted(CLASSES),
                   help="what the label is: the direction of motion (8 classes, shapes at random) or the objects' "
                        "shape (5 classes, directions at random)")
    p.add_argument("--plain", action="store_true",
                   help="flat background and flat objects (no texture; default: textured)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="processes rendering and encoding clips (the clips do not depend on it)")
    p.add_argument("--no_progress", action="store_true")
    args = p.parse_args(argv)
    if args.height % 2 or args.width % 2:
        p.error("--height and --width must be even (H.264 yuv420p)")
    lists = make_dataset(args.out_dir, args.num_videos, args.seed, args.num_frames, args.val_fraction,
                         args.height, args.width, progress=not args.no_progress,
                         workers=args.workers, classes=args.classes, plain=args.plain)
    names = CLASSES[args.classes]
    print(f"wrote {args.num_videos} clips ({len(names)} {args.classes} classes: {' '.join(names)}) to {args.out_dir}")
    for name, path in lists.items():
        print(f"  {name:8s} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
