"""Precompute SaViMAE patch saliency for every video (or frame folder) of a tree.

    python -m snappix.tools.saliency --video_root VIDEOS --out_root SALIENCY --input_size 112 --patch_size 8
    python -m snappix.tools.saliency --frames_root UCF-101-frames --out_root UCF101-saliency-patches \
        --input_size 224 --patch_size 16 --threshold 0.5 --num_workers 8

One step replaces SaViMAE's ``generate_simple_saliency_subset.py`` (saliency PNGs) and
``precompute_saliency_patches.py`` (PNG -> patch arrays), with the same flags (``--frames_root``,
``--sal_root`` for existing saliency PNG folders, ``--out_root``, ``--input_size``, ``--patch_size``,
``--threshold``). For each video it writes ``<out_root>/<relative path>.npy``: float32
``[T, input_size / p, input_size / p]`` in {0, 1}, one slice per raw frame (``docs/methods/savimae.md``).

Frames are decoded in chunks and the saliency is computed for a whole chunk at once
(:func:`snappix.masking.saliency.frame_saliency`); videos run in parallel worker processes with a
progress bar; files are written atomically, and a re-run skips the videos already done (resumable).
Failures are listed in ``<out_root>/saliency_failures.tsv`` and give exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from multiprocessing import get_context

import numpy as np

from snappix.data.video import VIDEO_SUFFIXES, find_videos

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
FAILURES_FILE = "saliency_failures.tsv"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="SaViMAE patch saliency arrays for a video / frame-folder tree")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video_root", help="tree of video files")
    src.add_argument("--frames_root", help="tree of frame folders (<Class>/<video>/img_00001.jpg, ...)")
    src.add_argument("--sal_root", help="tree of saliency PNG folders already computed (SaViMAE step 1 output)")
    p.add_argument("--out_root", required=True, help="output tree of <video>.npy arrays")
    p.add_argument("--input_size", type=int, default=224, help="model input side; frames are resized to it")
    p.add_argument("--patch_size", type=int, default=16)
    p.add_argument("--threshold", type=float, default=0.5, help="a pixel is salient if saliency >= threshold")
    p.add_argument("--ext", default=",".join(VIDEO_SUFFIXES), help="video extensions (with --video_root)")
    p.add_argument("--num_workers", type=int, default=max(1, (os.cpu_count() or 1) - 1))
    p.add_argument("--chunk_frames", type=int, default=64, help="frames decoded and processed at once")
    p.add_argument("--overwrite", action="store_true", help="recompute videos whose array exists")
    p.add_argument("--limit", type=int, default=None, help="only the first N videos (sorted)")
    return p


def find_inputs(root: str, video_exts: tuple[str, ...] | None) -> list[str]:
    """Sorted relative paths: video files (``video_exts``, found by :func:`snappix.data.video.find_videos`
    without following folder links) or, with ``None``, the folders holding images."""
    if video_exts is not None:
        if not video_exts:
            return []
        return sorted(os.path.relpath(p, root) for p in find_videos(root, video_exts, follow_links=False))
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if any(f.lower().endswith(IMAGE_EXTS) for f in filenames):
            out.append(os.path.relpath(dirpath, root))
    return sorted(out)


def output_path(out_root: str, rel: str) -> str:
    """``<out_root>/<rel>.npy`` (:func:`snappix.masking.saliency.saliency_path`, what training reads)."""
    from snappix.masking.saliency import saliency_path

    return saliency_path(out_root, rel)


def video_patch_saliency(path: str, input_size: int, patch_size: int, threshold: float, chunk_frames: int = 64,
                         is_saliency: bool = False) -> np.ndarray:
    """Patch saliency of every frame of one video or frame folder.

    Returns:
        float32 ``(T, input_size / p, input_size / p)`` in {0, 1}.

    Raises:
        VideoDecodeError: unreadable input (names the file).
    """
    import torch

    from snappix.data.video import open_video
    from snappix.masking.saliency import frame_saliency, patch_saliency

    parts = []
    with open_video(path) as reader:
        for start in range(0, reader.num_frames, chunk_frames):
            frames = reader.get_frames(np.arange(start, min(start + chunk_frames, reader.num_frames)))
            if is_saliency:  # stored saliency PNGs: grey in [0, 1], resized, no contrast step
                x = torch.from_numpy(frames[..., 0].copy()).float().div_(255.0)[:, None]
                sal = torch.nn.functional.interpolate(x, size=(input_size, input_size), mode="bilinear",
                                                      align_corners=False, antialias=True)[:, 0]
            else:
                sal = frame_saliency(frames, input_size)
            parts.append(patch_saliency(sal, patch_size, threshold).numpy())
    return np.concatenate(parts).astype(np.float32)


def _work(job) -> tuple[str, str, int]:
    rel, src, dst, opts = job
    import torch

    torch.set_num_threads(1)
    try:
        arr = video_patch_saliency(src, opts["input_size"], opts["patch_size"], opts["threshold"],
                                   opts["chunk_frames"], opts["is_saliency"])
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        tmp = f"{dst}.tmp{os.getpid()}.npy"
        np.save(tmp, arr)
        os.replace(tmp, dst)
        return rel, "", int(arr.shape[0])
    except Exception as exc:  # reported per video; the run continues
        return rel, f"{type(exc).__name__}: {exc}".replace("\n", " "), 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    root = args.video_root or args.frames_root or args.sal_root
    is_video = args.video_root is not None
    if not os.path.isdir(root):
        print(f"error: {root} is not a folder", file=sys.stderr)
        return 2
    if args.input_size % args.patch_size:
        print(f"error: --patch_size {args.patch_size} must divide --input_size {args.input_size}", file=sys.stderr)
        return 2
    exts = tuple(e if e.startswith(".") else "." + e for e in args.ext.lower().split(",") if e) if is_video else None
    rels = find_inputs(root, exts)[: args.limit]
    if not rels:
        print(f"error: no {'videos' if is_video else 'frame folders'} under {root}", file=sys.stderr)
        return 2
    opts = dict(input_size=args.input_size, patch_size=args.patch_size, threshold=args.threshold,
                chunk_frames=args.chunk_frames, is_saliency=args.sal_root is not None)
    jobs, skipped = [], 0
    for rel in rels:
        dst = output_path(args.out_root, rel)
        if os.path.isfile(dst) and not args.overwrite:
            skipped += 1
            continue
        jobs.append((rel, os.path.join(root, rel), dst, opts))
    os.makedirs(args.out_root, exist_ok=True)
    failures, frames = [], 0
    bar = tqdm(total=len(jobs), desc="saliency", unit="video")
    if args.num_workers <= 1:
        results = map(_work, jobs)
        pool = None
    else:
        pool = get_context("spawn").Pool(args.num_workers)
        results = pool.imap_unordered(_work, jobs)
    try:
        for rel, err, n in results:
            bar.update(1)
            frames += n
            if err:
                failures.append((rel, err))
                bar.write(f"failed: {rel}: {err}")
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    fail_path = os.path.join(args.out_root, FAILURES_FILE)
    if failures:
        with open(fail_path, "w") as f:
            f.writelines(f"{rel}\t{err}\n" for rel, err in failures)
    elif os.path.isfile(fail_path):
        os.remove(fail_path)
    print(f"{len(jobs) - len(failures)} written ({frames} frames), {skipped} already done, {len(failures)} failed"
          + (f" (see {fail_path})" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
