"""Token-selection benchmarks, each measured side by side in one run.

1. K-center (K-centered patch sampling, specs/kcenter.md §4, §8): N = 29 x 196 patches of 768 pixels + 3
   coordinates, k = 980, batch 8 (the paper's kcenter_vit after its 3 hybrid frames), on two inputs:
   8 windows of 29 frames of the real clips at 224 px (what the method is for) and white noise (the
   worst case for the bounded loop: no low-rank structure, so its bound prunes nothing).
   * ours: :func:`snappix.masking.kcenter.kcenter_select`, distances to the newest centre only, either
     ``dense`` (every point every step) or ``bounded`` (default on CPU: a rank-32 projection bound skips
     points whose minimum cannot change);
   * reference: :func:`~snappix.masking.kcenter.kcenter_greedy_pairwise` (the reference code's full
     ``(B, N, N)`` distance matrix, then the same greedy loop).
   Pixels are 6-bit levels and the coordinates are rounded to 1/64, so every squared distance is
   exact in float32 and all three must return identical indices (asserted); with arbitrary floats the
   summation orders differ in the last bit and can break near-ties differently.
   Peak memory is the rise of the process's peak resident set (``/proc/self/clear_refs`` reset before
   each method; ``torch.cuda.max_memory_allocated`` on GPU) above the resident set before the call.
2. Saliency precompute (SaViMAE, specs/savimae.md §3) on the real clips (``../shared/data/videos`` or
   ``--videos``), one thread each:
   * compute only, on the same decoded frames: ours (:func:`frame_saliency` + :func:`patch_saliency`
     on chunks of frames) versus SaViMAE's per-frame PIL loop (grey, resize, contrast, PNG write, PNG
     read, resize, threshold, block max);
   * end to end: ours from the video files versus the PIL loop from JPEG frame folders (SaViMAE's
     input; the JPEG extraction is not timed).

    python benchmarks/bench_masking.py [--videos DIR] [--input_size 224] [--patch_size 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from snappix.data.video import VIDEO_SUFFIXES, open_video  # noqa: E402
from snappix.masking.kcenter import kcenter_greedy_pairwise, kcenter_select, patch_points  # noqa: E402
from snappix.masking.saliency import frame_saliency, patch_saliency  # noqa: E402
from snappix.tools.saliency import video_patch_saliency  # noqa: E402

from proc_memory import reset_peak, status_kib  # noqa: E402  (benchmarks/, on sys.path as the script's folder)


# ------------------------------------------------------------------------------------------- memory
def measure(fn, device: torch.device):
    """``(result, seconds, peak extra MiB or None)`` of ``fn()``."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = status_kib("VmRSS") if reset_peak() else None
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    else:
        peak = None if base is None else (status_kib("VmHWM") - base) / 1024
    return out, dt, peak


def real_clip_patches(videos_dir: str, batch: int = 8, frames: int = 29, side: int = 224,
                      patch: int = 16) -> torch.Tensor | None:
    """``batch`` windows of ``frames`` frames from the real clips (stride 2 when a clip is long enough,
    else 1; windows spread over the clips), short side resized to ``side`` and centre-cropped, as
    ``(B, T, side/p, side/p, 3 p^2)`` normalised pixels quantised to 6-bit levels in [-1, 1), so that
    every squared distance is exact in float32. None when no clip is readable."""
    import torch.nn.functional as F

    if not os.path.isdir(videos_dir):
        return None
    clips = []
    for name in sorted(os.listdir(videos_dir)):
        if name.lower().endswith(VIDEO_SUFFIXES):
            with open_video(os.path.join(videos_dir, name)) as r:
                if r.num_frames >= frames:
                    clips.append(r.get_frames(np.arange(r.num_frames)))
    if not clips:
        return None
    windows = []
    while len(windows) < batch:
        for clip in clips[:batch - len(windows)]:
            stride = 2 if len(clip) >= 2 * frames + 8 else 1
            starts = len(clip) - (frames - 1) * stride
            s0 = (len(windows) * 37) % starts  # a different window on each pass over the clips
            w = torch.from_numpy(clip[s0:s0 + (frames - 1) * stride + 1:stride]).float().permute(0, 3, 1, 2)
            h, wd = w.shape[-2:]
            scale = side / min(h, wd)
            w = F.interpolate(w, size=(max(side, round(h * scale)), max(side, round(wd * scale))),
                              mode="bilinear", antialias=True, align_corners=False)
            top, left = (w.shape[-2] - side) // 2, (w.shape[-1] - side) // 2
            windows.append(w[..., top:top + side, left:left + side].clamp(0, 255).round())
    v = torch.stack(windows)  # (B, T, 3, side, side) in 0..255
    q = torch.div(v, 4, rounding_mode="floor") / 32 - 1
    g = side // patch
    return q.reshape(batch, frames, 3, g, patch, g, patch).permute(0, 1, 3, 5, 2, 4, 6).reshape(
        batch, frames, g, g, 3 * patch * patch)


def bench_kcenter(device: torch.device, videos_dir: str, batch: int = 8, frames: int = 29, side: int = 14,
                  k: int = 980) -> None:
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 64, (batch, frames, side, side, 768), generator=g, dtype=torch.uint8)
    noise = noise.to(torch.float32).div_(32.0).sub_(1.0)  # 6-bit levels in [-1, 1)
    cases = [("white noise (no low-rank structure: worst case for the bound)", noise)]
    real = real_clip_patches(videos_dir, batch, frames, side * 16, 16)
    if real is None:
        print(f"k-center: no clip of >= {frames} frames in {videos_dir}; real-clip case skipped")
    else:
        cases.insert(0, (f"real clips ({batch} windows of {frames} frames from {videos_dir}, 224 px, 6-bit)", real))
    first = torch.randint(0, frames * side * side, (batch,), generator=g)
    mem = lambda m: "     n/a" if m is None else f"{m:8.1f} MiB"  # noqa: E731
    for label, pixels in cases:
        x = patch_points(pixels, 16)
        x[..., -3:] = (x[..., -3:] * 64).round() / 64  # coordinates on a 1/64 grid: exact float32 distances
        x = x.to(device)
        ref, t_ref, m_ref = measure(lambda: kcenter_greedy_pairwise(x, k, first=first), device)
        print(f"k-center on {label}")
        print(f"  N={frames * side * side} ({frames}x{side * side}) D={x.shape[-1]} k={k} batch={batch} on {device}")
        print(f"  full pairwise greedy        {t_ref:7.2f} s   peak extra {mem(m_ref)}")
        for method in ("dense", "bounded"):
            ours, t, m = measure(lambda: kcenter_select(x, k, first=first, method=method), device)
            assert torch.equal(ours.cpu(), ref.cpu()), f"k-center {method}: selected different patches"
            ratio_m = "n/a" if not m or m_ref is None else f"{m_ref / max(m, 1e-3):.0f}x"
            print(f"  ours, {method:<8} (O(N) mem)  {t:7.2f} s   peak extra {mem(m)}   speed-up "
                  f"{t_ref / t:5.2f}x (target >= 3x), memory {ratio_m} less (target >= 10x); identical indices")


# ------------------------------------------------------------------------------------------- saliency
def pil_patch_saliency(frame: np.ndarray, input_size: int, patch_size: int, threshold: float) -> np.ndarray:
    """SaViMAE's two scripts for one frame: saliency PNG, then the PNG reloaded and pooled (spec §3)."""
    from PIL import Image

    img = Image.fromarray(frame).convert("L").resize((input_size, input_size), Image.BILINEAR)
    i = np.asarray(img, dtype=np.float32) / 255.0
    dev = np.abs(i - i.mean())
    sal = dev / dev.max() if dev.max() > 0 else dev
    buf = io.BytesIO()
    Image.fromarray((sal * 255).astype(np.uint8)).save(buf, format="PNG")
    buf.seek(0)
    s = np.asarray(Image.open(buf).convert("L").resize((input_size, input_size), Image.BILINEAR),
                   dtype=np.float32) / 255.0
    p = input_size // patch_size
    return (s >= threshold).reshape(p, patch_size, p, patch_size).max(axis=(1, 3)).astype(np.float32)


def pil_from_folder(folder: str, input_size: int, patch_size: int, threshold: float) -> np.ndarray:
    from PIL import Image

    out = []
    for name in sorted(os.listdir(folder)):
        frame = np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"))
        out.append(pil_patch_saliency(frame, input_size, patch_size, threshold))
    return np.stack(out)


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_saliency(videos_dir: str, input_size: int, patch_size: int, threshold: float = 0.5) -> None:
    from PIL import Image

    torch.set_num_threads(1)
    paths = sorted(os.path.join(videos_dir, f) for f in os.listdir(videos_dir) if f.lower().endswith(VIDEO_SUFFIXES))
    if not paths:
        print(f"saliency: no videos in {videos_dir}; skipped")
        return
    decoded = []
    for p in paths:
        with open_video(p) as r:
            decoded.append(r.get_frames(np.arange(r.num_frames)))
    n = sum(len(d) for d in decoded)
    def ours():
        for d in decoded:
            for s in range(0, len(d), 64):
                patch_saliency(frame_saliency(d[s:s + 64], input_size), patch_size, threshold)

    def pil():
        for d in decoded:
            for f in d:
                pil_patch_saliency(f, input_size, patch_size, threshold)

    # compute only: best of 2 passes each (the first pass of a fresh process pays allocator and kernel set-up)
    t_ours = min(_seconds(ours) for _ in range(2))
    t_pil = min(_seconds(pil) for _ in range(2))
    print(f"saliency precompute, {len(paths)} real clips, {n} frames, {input_size}px patch {patch_size}, 1 thread")
    print(f"  compute only   PIL per-frame {n / t_pil:8.1f} frames/s | ours vectorised {n / t_ours:8.1f} frames/s "
          f"| ratio {t_pil / t_ours:.1f}x (target >= 5x)")
    # end to end: ours from the videos, SaViMAE's loop from JPEG frame folders
    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        for p, d in zip(paths, decoded):
            folder = os.path.join(tmp, os.path.basename(p))
            os.makedirs(folder)
            for i, f in enumerate(d):
                Image.fromarray(f).save(os.path.join(folder, f"img_{i + 1:05d}.jpg"), quality=95)
            folders.append(folder)
        t0 = time.perf_counter()
        ours = [video_patch_saliency(p, input_size, patch_size, threshold) for p in paths]
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        for folder in folders:
            pil_from_folder(folder, input_size, patch_size, threshold)
        t_pil = time.perf_counter() - t0
    n_ours = sum(len(a) for a in ours)
    print(f"  end to end     PIL from JPEGs {n / t_pil:7.1f} frames/s | ours from videos {n_ours / t_ours:7.1f} "
          f"frames/s | ratio {(n_ours / t_ours) / (n / t_pil):.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", default=os.path.join(REPO, "..", "shared", "data", "videos"))
    p.add_argument("--input_size", type=int, default=224)
    p.add_argument("--patch_size", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip_kcenter", action="store_true")
    p.add_argument("--skip_saliency", action="store_true")
    p.add_argument("--tiny", action="store_true", help="k-center on tiny white noise only (dry runs: batch 2, "
                   "N = 2 x 16, k = 8); no real clips, no saliency")
    args = p.parse_args()
    if args.tiny:
        bench_kcenter(torch.device(args.device), "", batch=2, frames=2, side=4, k=8)
        return
    if not args.skip_kcenter:
        bench_kcenter(torch.device(args.device), args.videos)
    if args.skip_saliency:
        print("saliency: skipped (--skip_saliency)")
    elif os.path.isdir(args.videos):
        bench_saliency(args.videos, args.input_size, args.patch_size)
    else:
        print(f"saliency: {args.videos} not found (set --videos); skipped")


if __name__ == "__main__":
    main()
