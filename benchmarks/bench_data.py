"""Data-pipeline throughput: full pipelines versus decode-only, measured side by side in one run.

On the real clips (``../shared/data/videos``, or ``--videos``) preprocessed by ``preprocess_data.py``
(linear grey, short side 112), one process with one thread (as one DataLoader worker):

* decode-only: the dataset with its transform replaced by the identity and no masks -- the same
  list, sampler, seed (hence the same frame indices) and the same reader;
* (a) pretraining pipeline: SnapPix clip 16 x 4, multi-scale crop to 112, tube (0.85) and
  running-cell (0.5) masks (``VideoPretrainDataset``);
* (b) finetuning pipeline: dense clip 16 x 4, RandAugment rand-m7-n4-mstd0.5-inc1, random resized
  crop to 112, flip, cube random erasing 0.25 (``VideoClsDataset``, mode train);
* (c) the finetuning pipeline with repeated augmentation ``num_sample = 2`` (SnapPix / VideoMAE SSV2,
  VideoMamba K400) and (d) the pretraining pipeline with ``num_sample = 4`` (VideoMAEv2 / SnapPix
  pretraining): each video decoded once and augmented N times, as the reference pipelines do.

Rounds alternate decode-only and pipeline passes; the median pass time is reported. The ratio
printed is pipeline videos/s divided by decode-only videos/s, where decode-only decodes each video once
(1.0 = the transforms are free; with N views a pipeline that decoded N times would sit near 1/N).

    python benchmarks/bench_data.py [--videos DIR] [--rounds 7] [--epochs 4] [--backend decord]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from snappix.data.datasets import VideoClsDataset, VideoPretrainDataset  # noqa: E402
from snappix.data.lists import write_list  # noqa: E402
from snappix.masking import build_mask_generator  # noqa: E402


def identity(frames, **_):
    return frames


def timed_pass(ds, epochs: int, seed: int) -> float:
    """Seconds to fetch every item ``epochs`` times, with a fixed seed (same frame indices each pass)."""
    ds.set_epoch(0, seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for i in range(len(ds)):
            ds[i]
    return time.perf_counter() - t0


def compare(name: str, pipeline, decode_only, epochs: int, rounds: int) -> float:
    t_pipe, t_dec = [], []
    for r in range(rounds):
        t_dec.append(timed_pass(decode_only, epochs, seed=r))
        t_pipe.append(timed_pass(pipeline, epochs, seed=r))
    n = epochs * len(pipeline)
    dec, pipe = n / statistics.median(t_dec), n / statistics.median(t_pipe)
    views = getattr(pipeline, "num_sample", 1)
    print(f"{name:<40s} decode-only {dec:6.1f} videos/s | pipeline {pipe:6.1f} videos/s "
          f"({pipe * views:6.1f} clips/s) | ratio {pipe / dec:.3f}", flush=True)
    return pipe / dec


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", default=os.environ.get("SNAPPIX_TEST_VIDEOS",
                                                      os.path.join(REPO, "..", "shared", "data", "videos")))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--epochs", type=int, default=4, help="passes over the clips per timed round")
    p.add_argument("--backend", default="decord", choices=["decord", "pyav"])
    args = p.parse_args(argv)
    if not os.path.isdir(args.videos):
        sys.exit(f"videos folder not found: {args.videos} (set --videos or SNAPPIX_TEST_VIDEOS)")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"preprocessing {args.videos} (linear grey, short side 112) ...", flush=True)
        subprocess.run([sys.executable, os.path.join(REPO, "preprocess_data.py"), args.videos, tmp,
                        "--input_format", ".mp4,.avi", "--flat", "--cores", "2"], check=True,
                       stdout=subprocess.DEVNULL)
        names = sorted(f for f in os.listdir(tmp) if f.endswith(".mp4"))
        write_list(os.path.join(tmp, "pretrain.csv"), [(n, 0, -1) for n in names], "pretrain")
        write_list(os.path.join(tmp, "train.csv"), [(n, i) for i, n in enumerate(names)], "cls")
        print(f"{len(names)} clips, backend {args.backend}, 1 thread, {args.rounds} rounds x {args.epochs} epochs\n")

        common = dict(data_root=tmp, num_frames=16, sampling_rate=4, video_backend=args.backend)
        grid = (8, 14, 14)
        pre = VideoPretrainDataset(os.path.join(tmp, "pretrain.csv"), input_size=112,
                                   encoder_mask=build_mask_generator("tube", grid, 0.85),
                                   decoder_mask=build_mask_generator("run_cell", grid, 0.5), **common)
        pre_dec = VideoPretrainDataset(os.path.join(tmp, "pretrain.csv"), **common)
        pre_dec.transform = identity
        ft = VideoClsDataset(os.path.join(tmp, "train.csv"), mode="train", input_size=112,
                             aa="rand-m7-n4-mstd0.5-inc1", reprob=0.25, flip=True, **common)
        ft_dec = VideoClsDataset(os.path.join(tmp, "train.csv"), mode="train", **common)
        ft_dec.transform = identity
        ft2 = VideoClsDataset(os.path.join(tmp, "train.csv"), mode="train", input_size=112, num_sample=2,
                              aa="rand-m7-n4-mstd0.5-inc1", reprob=0.25, flip=True, **common)
        pre4 = VideoPretrainDataset(os.path.join(tmp, "pretrain.csv"), input_size=112, num_sample=4,
                                    encoder_mask=build_mask_generator("tube", grid, 0.85),
                                    decoder_mask=build_mask_generator("run_cell", grid, 0.5), **common)

        a = compare("(a) pretraining pipeline", pre, pre_dec, args.epochs, args.rounds)
        b = compare("(b) finetuning pipeline", ft, ft_dec, args.epochs, args.rounds)
        c = compare("(c) finetuning, --num_sample 2", ft2, ft_dec, args.epochs, args.rounds)
        d = compare("(d) pretraining, --num_sample 4", pre4, pre_dec, args.epochs, args.rounds)
        print(f"\nratios: (a) {a:.3f} (target >= 0.9), (b) {b:.3f} (target >= 0.6), (c) {c:.3f} (target >= 0.85), "
              f"(d) {d:.3f} (target >= 0.85); VideoMAEv2's per-frame PIL finetuning pipeline keeps about 0.30")


if __name__ == "__main__":
    main()
