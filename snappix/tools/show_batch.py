"""Load one batch through a snappix dataset and show what the model will get.

Prints tensor shapes, value ranges and mask counts, and writes a PNG grid of the frames of the
first clip (with the encoder-visible tokens outlined for pretraining batches)::

    python -m snappix.tools.show_batch --data_path LIST --data_root ROOT --mode pretrain --out batch.png
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.data import DataLoader


def build(args):
    from snappix.data.datasets import VideoClsDataset, VideoPretrainDataset, multiple_samples_collate
    from snappix.masking import build_mask_generator

    if args.mode == "pretrain":
        grid = (args.num_frames // 2, args.input_size // args.patch_size, args.input_size // args.patch_size)
        ds = VideoPretrainDataset(args.data_path, args.data_root, num_frames=args.num_frames,
                                  sampling_rate=args.sampling_rate, input_size=args.input_size,
                                  encoder_mask=build_mask_generator("tube", grid, args.mask_ratio),
                                  decoder_mask=build_mask_generator("run_cell", grid, 0.5),
                                  log_dir=args.log_dir)
        return ds, None
    ds = VideoClsDataset(args.data_path, args.data_root, mode=args.mode, num_frames=args.num_frames,
                         sampling_rate=args.sampling_rate, input_size=args.input_size,
                         short_side_size=args.input_size, num_sample=args.num_sample, log_dir=args.log_dir)
    return ds, multiple_samples_collate if args.mode == "train" and args.num_sample > 1 else None


def save_grid(video: torch.Tensor, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = video[0]  # first channel, (T, H, W)
    cols = min(8, frames.shape[0])
    rows = (frames.shape[0] + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < frames.shape[0]:
            ax.imshow(frames[i].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"t={i}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_path", required=True)
    p.add_argument("--data_root", default="")
    p.add_argument("--mode", default="pretrain", choices=["pretrain", "train", "validation"])
    p.add_argument("--num_frames", type=int, default=16)
    p.add_argument("--sampling_rate", type=int, default=4)
    p.add_argument("--input_size", type=int, default=112)
    p.add_argument("--patch_size", type=int, default=8)
    p.add_argument("--mask_ratio", type=float, default=0.85)
    p.add_argument("--num_sample", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--num_workers", type=int, default=2)
    p.add_argument("--log_dir", default=None, help="where bad_videos.txt goes")
    p.add_argument("--out", default=None, help="PNG grid of the first clip")
    args = p.parse_args(argv)
    ds, collate = build(args)
    loader = DataLoader(ds, batch_size=min(args.batch_size, len(ds)), num_workers=args.num_workers,
                        collate_fn=collate, shuffle=True)
    t0 = time.perf_counter()
    batch = next(iter(loader))
    print(f"{args.mode} dataset: {len(ds)} items from {args.data_path} "
          f"(first batch in {time.perf_counter() - t0:.2f} s)")
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 1:
            extra = (f" range [{value.min():.3f}, {value.max():.3f}]" if value.is_floating_point()
                     else f" hidden per clip {value.sum(1).tolist()}")
            print(f"  {key:14s} {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}{extra}")
        else:
            print(f"  {key:14s} {value.tolist() if isinstance(value, torch.Tensor) else value}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_grid(batch["video"][0], args.out, f"{args.mode}: first clip of the batch")
        print(f"  frames of the first clip -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
