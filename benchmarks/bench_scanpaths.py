"""G-Eymol scanpaths: ours (the field once per frame) versus the per-evaluation baseline, in one run.

On the real clips (``$SNAPPIX_TEST_VIDEOS``, else the test suite's clip folder, or ``--videos``), the
first ``--frames`` frames of each clip are decoded once (not timed) and run through

* ours: :class:`snappix.scanpaths.GEymol` (masses once per frame, one FFT correlation and one window
  maximum give the force at every pixel, the ODE looks it up);
* baseline: :class:`geymol_reference.ReferenceGEymol`, a straightforward port of the released G-Eymol
  code's approach (Sobel, crop, normalisation and window sum redone at every ODE evaluation),

from the same seeded start state, at the same working resolution (long side ``--long_side``), one thread,
each in its own fresh Python process (``--same_process`` also times both in one process, the baseline
after ours: the released code's allocation pattern, 8 padded window copies alive at once and freed at
every evaluation, is then much cheaper because ours has already raised glibc's malloc thresholds).
Printed per clip and in total: frames per second of each, the speed ratio, the largest distance
between the two gaze paths (pixels of the working resolution), ODE evaluations per frame, and whether
the fixations (25 px / 50 ms on the gaze in source pixels) fall in the same 7 x 7 cells; in total also
the CPU time of each (``time.process_time``: less sensitive than wall time to other work on the machine).

    python benchmarks/bench_scanpaths.py [--videos DIR] [--frames 48] [--long_side 224] [--seed 0] [--same_process]
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(1, os.path.join(REPO, "tests"))

from geymol_reference import ReferenceGEymol  # noqa: E402  (benchmarks/, the script's folder)

from snappix.data.video import VIDEO_SUFFIXES  # noqa: E402
from snappix.scanpaths import GEymol, GEymolParams, detect_fixations, fixation_rows, video_seed  # noqa: E402
from snappix.scanpaths.features import resize_frame, working_size  # noqa: E402
from snappix.scanpaths.pipeline import source_frames  # noqa: E402


def default_videos() -> str | None:
    """The clip folder the test suite uses (``$SNAPPIX_TEST_VIDEOS`` first), or None."""
    from conftest import shared_videos_dir  # tests/conftest.py, on sys.path above

    path = shared_videos_dir()
    return str(path) if path is not None else None


def load_clip(path: str, frames: int, long_side: int) -> tuple[list[np.ndarray], float, tuple[int, int]]:
    """The first ``frames`` BGR frames resized to the working size, the clip's fps and source size."""
    fps, it = source_frames(path)
    out = []
    for frame in it:
        out.append(frame)
        if len(out) >= frames:
            break
    if hasattr(it, "close"):
        it.close()
    size = out[0].shape[:2]
    work = working_size(*size, long_side)
    return [resize_frame(f, work) for f in out], (fps if fps > 0 else 25.0), size


def run(model, frames: list[np.ndarray]) -> tuple[np.ndarray, float, float]:
    """``(gaze (T, 2) in working pixels, wall seconds, CPU seconds of this process)`` of ``model.step``."""
    t0, c0 = time.perf_counter(), time.process_time()
    gaze = [model.step(f) for f in frames]
    return np.asarray(gaze, np.float64), time.perf_counter() - t0, time.process_time() - c0


def rows_of(gaze: np.ndarray, work: tuple[int, int], size: tuple[int, int], fps: float) -> np.ndarray:
    """``scan_idx`` rows of a working-resolution gaze path (fixations on the gaze in source pixels)."""
    src = gaze * np.array([size[0] / work[0], size[1] / work[1]])
    return fixation_rows(detect_fixations(src, fps), size[0], size[1])


def time_method(method: str, clips: list[str], args) -> dict:
    """``{clip: (gaze, seconds, evaluations, work size, source size, fps, CPU seconds)}`` of one method."""
    params = GEymolParams(long_side=args.long_side)
    cls = GEymol if method == "ours" else ReferenceGEymol
    out = {}
    for path in clips:
        frames, fps, size = load_clip(path, args.frames, args.long_side)
        work = frames[0].shape[:2]
        model = cls(*work, fps=fps, params=params, seed=video_seed(args.seed, os.path.basename(path)))
        gaze, seconds, cpu = run(model, frames)
        out[path] = (gaze, seconds, model.evaluations, work, size, fps, cpu)
    return out


def time_in_fresh_process(method: str, clips: list[str], args) -> dict:
    """:func:`time_method` in a new Python process (each program starts with a fresh allocator)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.pkl")
        cmd = [sys.executable, os.path.abspath(__file__), "--_method", method, "--_out", out, "--frames",
               str(args.frames), "--long_side", str(args.long_side), "--seed", str(args.seed), "--threads",
               str(args.threads), "--_clips", *clips]
        subprocess.run(cmd, check=True)
        with open(out, "rb") as f:
            return pickle.load(f)  # written just above by our own child process


def compare(clips: list[str], ours: dict, base: dict) -> list[dict]:
    rows = []
    for path in clips:
        g_o, t_o, e_o, work, size, fps, c_o = ours[path]
        g_b, t_b, e_b, c_b = base[path][0], base[path][1], base[path][2], base[path][6]
        r_o, r_b = rows_of(g_o, work, size, fps), rows_of(g_b, work, size, fps)
        rows.append(dict(name=os.path.basename(path), frames=len(g_o), work=work, t_ours=t_o, t_base=t_b,
                         cpu_ours=c_o, cpu_base=c_b,
                         dev=float(np.hypot(*(g_o - g_b).T).max()), eval_o=e_o / len(g_o), eval_b=e_b / len(g_b),
                         n_fix=(len(r_o), len(r_b)),
                         same_cells=len(r_o) == len(r_b) and bool((r_o[:, 0] == r_b[:, 0]).all()),
                         same_rows=r_o.shape == r_b.shape and bool((r_o == r_b).all())))
    return rows


def print_table(results: list[dict], label: str) -> None:
    print(f"-- {label}")
    print(f"{'clip':30s} {'frames':>6s} {'size':>8s} {'ours f/s':>9s} {'base f/s':>9s} {'speed-up':>8s} "
          f"{'max dev px':>10s} {'evals/frame':>12s} {'fixations':>9s} {'same cells':>10s} {'same rows':>9s}")
    for r in results:
        print(f"{r['name'][:30]:30s} {r['frames']:6d} {r['work'][0]:>3d}x{r['work'][1]:<4d} "
              f"{r['frames'] / r['t_ours']:9.2f} {r['frames'] / r['t_base']:9.2f} {r['t_base'] / r['t_ours']:7.1f}x "
              f"{r['dev']:10.2f} {r['eval_o']:5.1f} / {r['eval_b']:4.1f} {r['n_fix'][0]:4d}/{r['n_fix'][1]:<4d} "
              f"{'yes' if r['same_cells'] else 'NO':>10s} {'yes' if r['same_rows'] else 'NO':>9s}")
    n = sum(r["frames"] for r in results)
    t_o, t_b = sum(r["t_ours"] for r in results), sum(r["t_base"] for r in results)
    print(f"total: {n} frames; ours {n / t_o:.2f} frames/s ({1000 * t_o / n:.1f} ms/frame), baseline "
          f"{n / t_b:.2f} frames/s ({1000 * t_b / n:.1f} ms/frame); speed-up {t_b / t_o:.1f}x; largest gaze "
          f"deviation {max(r['dev'] for r in results):.2f} px; fixations in the same cells on "
          f"{sum(r['same_cells'] for r in results)}/{len(results)} clips "
          f"(identical rows on {sum(r['same_rows'] for r in results)}/{len(results)})")
    c_o, c_b = sum(r["cpu_ours"] for r in results), sum(r["cpu_base"] for r in results)
    print(f"CPU time of the process (steadier than wall time on a shared machine): ours {1000 * c_o / n:.1f} "
          f"ms/frame, baseline {1000 * c_b / n:.1f} ms/frame; speed-up {c_b / c_o:.1f}x")


def readable(clips: list[str]) -> list[str]:
    """The clips whose first frame decodes (the others are reported and left out)."""
    ok = []
    for path in clips:
        try:
            load_clip(path, 1, 32)
            ok.append(path)
        except Exception as exc:  # a clip that does not decode is reported, the others still run
            print(f"{os.path.basename(path)}: skipped ({type(exc).__name__}: {exc})")
    return ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", default=None, help="folder of clips (default: $SNAPPIX_TEST_VIDEOS or the tests' clips)")
    p.add_argument("--frames", type=int, default=48, help="frames per clip (fewer if the clip is shorter)")
    p.add_argument("--long_side", type=int, default=224, help="working resolution: longer side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    p.add_argument("--same_process", action="store_true",
                   help="also time both in this process, the baseline after ours (allocator warmed up by ours)")
    p.add_argument("--_method", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    p.add_argument("--_clips", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cv2.setNumThreads(args.threads)
    if args._method:  # the child process of time_in_fresh_process
        with open(args._out, "wb") as f:
            pickle.dump(time_method(args._method, args._clips, args), f)
        return 0
    videos = args.videos or default_videos()
    if not videos or not os.path.isdir(videos):
        print("bench_scanpaths: no clip folder (set --videos or SNAPPIX_TEST_VIDEOS); skipped")
        return 0
    clips = readable(sorted(os.path.join(videos, f) for f in os.listdir(videos) if f.lower().endswith(VIDEO_SUFFIXES)))
    if not clips:
        print("no readable clip")
        return 1
    print(f"G-Eymol scanpaths on {len(clips)} clips of {videos}: first {args.frames} frames, long side "
          f"{args.long_side}, seed {args.seed}, {args.threads} OpenCV thread(s)")
    ours, base = time_in_fresh_process("ours", clips, args), time_in_fresh_process("baseline", clips, args)
    print_table(compare(clips, ours, base), "each in a fresh process (as each program runs on its own)")
    if args.same_process:
        ours, base = time_method("ours", clips, args), time_method("baseline", clips, args)
        print_table(compare(clips, ours, base), "one process, the baseline after ours (allocator warmed up by ours)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
