"""VideoMamba benchmarks, each measured side by side in one run.

1. **Scan backends** on one bidirectional mixer (:class:`snappix.models.mamba_mixer.BiMambaMixer`, d = 192, the
   VideoMamba-Ti block) at L = 1 + 8 x 196 = 1569 tokens (224 px, 8 frames), batch 1: forward (no grad) and
   forward + backward time of our ``sequential`` and ``parallel`` scans (and ``cuda`` when ``mamba_ssm``
   imports on a GPU) against the indexed-loop scan of ``benchmarks/baselines/selective_scan_loop.py`` (the
   way pure-PyTorch Mamba references write it), with the ratios. The baseline's backward grows with L^2: it
   alone takes about 4 minutes at L = 1569 on one CPU core (``--mixer_frames 2``: L = 393, about 5 s).
2. **Scaling with frames**: VideoMamba-Ti (192 / 24) against this repo's video ViT of the same width and depth
   (:class:`~snappix.models.classifiers.VideoViTClassifier`, 3 heads, SDPA attention, patch 16, tubelet 1:
   the same 49 tokens per frame at 112 px), forward + backward time and peak memory at 8 / 16 / 32 / 64
   frames, batch 1, 400 classes. Prints the ratio per row and the exponent ``k`` of a fit ``cost ~ frames^k``.
   Peak memory is the rise of the process's peak resident set during one step (measured in a child process
   with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors leave the resident set; freed heap memory
   returned with ``malloc_trim`` and ``/proc/self/clear_refs`` reset before the step;
   ``torch.cuda.max_memory_allocated`` on GPU) above the resident set before it (weights and gradients, allocated
   by a warm-up step, are in neither).

    python benchmarks/bench_mamba.py [--quick] [--device cpu|cuda] [--frames 8 16 32 64] [--img_size 112]
                                     [--mixer_frames 8] [--reps 2] [--skip_mixer] [--skip_scaling]

``--quick``: mixer at 2 frames (L = 393), scaling at 2 / 4 / 8 frames, one repetition.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import snappix.models.mamba_mixer as mamba_mixer  # noqa: E402
from snappix.models.classifiers import VideoViTClassifier  # noqa: E402
from snappix.models.selective_scan import cuda_scan_available  # noqa: E402
from snappix.models.videomamba import VideoMamba  # noqa: E402

from baselines.selective_scan_loop import selective_scan_loop  # noqa: E402
from proc_memory import reset_peak, status_kib  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, reps: int, warmup: bool = True) -> float:
    """Best of ``reps`` wall-clock seconds of ``fn()`` (after one untimed call when ``warmup``)."""
    if warmup:
        fn()
    best = math.inf
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def peak_mib(fn, device: torch.device) -> float | None:
    """Rise of peak memory during ``fn()`` above the memory in use before it, MiB (None if unmeasurable)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    release_freed_memory()
    if not reset_peak():
        return None
    base = status_kib("VmRSS")
    fn()
    return (status_kib("VmHWM") - base) / 1024


def release_freed_memory() -> None:
    """Return memory that glibc keeps after ``free`` to the system (``malloc_trim``), so that an earlier step's
    freed activations do not hide the next step's rise in resident memory."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def loop_scan():
    """Make the mixers call the indexed-loop baseline instead of :func:`selective_scan`."""
    original = mamba_mixer.selective_scan
    mamba_mixer.selective_scan = selective_scan_loop
    try:
        yield
    finally:
        mamba_mixer.selective_scan = original


# ------------------------------------------------------------------------------------------- 1. mixer
def bench_mixer(frames: int, device: torch.device, reps: int, tokens_per_frame: int = 196) -> None:
    length = 1 + frames * tokens_per_frame
    torch.manual_seed(0)
    mixer = mamba_mixer.BiMambaMixer(192, depth=24).to(device)
    h = torch.randn(1, length, 192, device=device)
    print(f"\n## 1. one bidirectional mixer, d = 192 (d_inner 384, d_state 16), "
          f"L = 1 + {frames} x {tokens_per_frame} = {length}, batch 1, {device.type}, "
          f"{torch.get_num_threads()} thread(s)")

    def forward():
        with torch.no_grad():
            mixer(h)

    def train_step():
        mixer.zero_grad(set_to_none=True)
        mixer(h.requires_grad_()).square().mean().backward()

    backends = ["sequential", "parallel"] + (["cuda"] if device.type == "cuda" and cuda_scan_available() else [])
    rows = {}
    for backend in backends:
        mixer.scan_backend = backend
        rows[backend] = (timed(forward, device, reps), timed(train_step, device, reps))
    with loop_scan():
        rows["indexed loop (baseline)"] = (timed(forward, device, 1, warmup=False),
                                           timed(train_step, device, 1, warmup=False))
    with torch.no_grad():
        mixer.scan_backend = "sequential"
        ours = mixer(h)
        with loop_scan():
            diff = (mixer(h) - ours).abs().max().item()
    print(f"max |ours - baseline| of the mixer output: {diff:.2e}")
    base_f, base_fb = rows["indexed loop (baseline)"]
    print("| scan | forward ms | fwd+bwd ms | forward speed-up | fwd+bwd speed-up |")
    print("|---|---|---|---|---|")
    for name, (f, fb) in rows.items():
        print(f"| {name} | {f * 1e3:.0f} | {fb * 1e3:.0f} | {base_f / f:.1f}x | {base_fb / fb:.1f}x |")


# ------------------------------------------------------------------------------------------- 2. scaling
def build(kind: str, frames: int, img_size: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    common = dict(num_classes=400, img_size=img_size, patch_size=16, num_frames=frames, in_chans=3,
                  embed_dim=192, depth=24, drop_path_rate=0.0)
    if kind == "mamba":
        return VideoMamba(**common).to(device)
    return VideoViTClassifier(tubelet_size=1, num_heads=3, attn_impl="sdpa", init_scale=1.0, **common).to(device)


def fit_exponent(xs, ys) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def scaling_step(kind: str, frames: int, img_size: int, device: torch.device):
    """A fwd+bwd step of a freshly built model on one random clip (the first call is the warm-up)."""
    model = build(kind, frames, img_size, device)
    video = torch.rand(1, 3, frames, img_size, img_size, device=device)

    def step():
        model.zero_grad(set_to_none=True)
        model(video).logsumexp(-1).sum().backward()

    step()  # warm-up; allocates the gradients so that a later peak is the activations'
    return step


def scaling_memory(frame_counts, img_size: int, device: torch.device) -> dict[str, list]:
    """Peak MiB per model and frame count. On CPU this runs in a child process started with
    ``MALLOC_MMAP_THRESHOLD_=65536``: glibc then returns every large freed tensor to the system at once, so the
    resident set follows the live tensors (otherwise it depends on heap fragmentation). The setting slows
    allocation, so the timings are taken in this process, without it."""
    if device.type == "cpu" and os.environ.get("MALLOC_MMAP_THRESHOLD_") != "65536":
        cmd = [sys.executable, os.path.abspath(__file__), "--memory_json", "--img_size", str(img_size),
               "--device", str(device), "--frames", *map(str, frame_counts)]
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    return {kind: [peak_mib(scaling_step(kind, f, img_size, device), device) for f in frame_counts]
            for kind in ("mamba", "vit")}


def bench_scaling(frame_counts, img_size: int, device: torch.device, reps: int) -> None:
    side = img_size // 16
    print(f"\n## 2. VideoMamba-Ti vs video ViT (192 / 24, 3 heads, SDPA), {img_size} px, patch 16, tubelet 1 "
          f"({side * side} tokens per frame), batch 1, fwd+bwd, {device.type}")
    times = {kind: [timed(scaling_step(kind, f, img_size, device), device, reps, warmup=False) for f in frame_counts]
             for kind in ("mamba", "vit")}
    mems = scaling_memory(frame_counts, img_size, device)
    print("| frames | tokens (Mamba / ViT) | Mamba s | ViT s | Mamba / ViT time | Mamba MiB | ViT MiB | "
          "Mamba / ViT memory |")
    print("|---|---|---|---|---|---|---|---|")
    for i, frames in enumerate(frame_counts):
        ms, vs, mm, vm = times["mamba"][i], times["vit"][i], mems["mamba"][i], mems["vit"][i]
        mem = f"{mm:.0f} | {vm:.0f} | {mm / vm:.2f}" if mm and vm else "- | - | -"
        print(f"| {frames} | {1 + frames * side * side} / {frames * side * side} | {ms:.2f} | {vs:.2f} | "
              f"{ms / vs:.2f} | {mem} |")
    for kind, label in (("mamba", "VideoMamba-Ti"), ("vit", "video ViT")):
        line = f"{label}: time ~ frames^{fit_exponent(frame_counts, times[kind]):.2f}"
        if all(m and m > 0 for m in mems[kind]):
            line += f", peak memory ~ frames^{fit_exponent(frame_counts, mems[kind]):.2f}"
        print(line)
    faster = [f for f, m, v in zip(frame_counts, times["mamba"], times["vit"]) if m < v]
    smaller = [f for f, m, v in zip(frame_counts, mems["mamba"], mems["vit"]) if m and v and m < v]
    print(f"VideoMamba-Ti faster than the ViT at frames: {faster or 'none measured'}; "
          f"less memory at frames: {smaller or 'none measured'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run (smaller L and frame counts, 1 repetition)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--img_size", type=int, default=112)
    parser.add_argument("--mixer_frames", type=int, default=8, help="L = 1 + frames x 196 for the mixer benchmark")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--skip_mixer", action="store_true")
    parser.add_argument("--skip_scaling", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="mixer only, L = 1 + 16 tokens, 1 repetition (dry runs)")
    parser.add_argument("--memory_json", action="store_true", help=argparse.SUPPRESS)  # child of scaling_memory
    args = parser.parse_args()
    if args.memory_json:
        print(json.dumps(scaling_memory(args.frames, args.img_size, torch.device(args.device))))
        return
    if args.quick:
        args.frames, args.mixer_frames, args.reps = [2, 4, 8], 2, 1
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    if args.tiny:
        args.mixer_frames, args.reps, args.skip_scaling = 1, 1, True
    if not args.skip_mixer:
        bench_mixer(args.mixer_frames, device, args.reps, 16 if args.tiny else 196)
    if not args.skip_scaling:
        bench_scaling(args.frames, args.img_size, device, args.reps)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
