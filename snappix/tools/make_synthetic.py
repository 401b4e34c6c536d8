"""Write the synthetic moving-square dataset: ``python -m snappix.tools.make_synthetic OUT``."""

from __future__ import annotations

import argparse

from snappix.data.synthetic import DIRECTIONS, make_dataset


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out_dir")
    p.add_argument("--num_videos", type=int, default=32)
    p.add_argument("--num_frames", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    lists = make_dataset(args.out_dir, args.num_videos, args.seed, args.num_frames)
    print(f"wrote {args.num_videos} clips ({len(DIRECTIONS)} motion-direction classes) to {args.out_dir}")
    for name, path in lists.items():
        print(f"  {name:8s} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
