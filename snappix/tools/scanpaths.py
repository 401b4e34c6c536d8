"""G-Eymol scanpaths for every video (or frame folder) of a tree, in Saccade-VSSL's ``scan_idx_7`` format.

    python -m snappix.tools.scanpaths --video_root UCF-101 --out_root UCF101/scan_idx_7 --workers 8
    python -m snappix.tools.scanpaths --frames_root UCF101/jpegs_256 --out_root UCF101/scan_idx_7
    python -m snappix.tools.scanpaths --list train.csv --data_root VIDEOS --out_root scan_idx_7

Each input ``<root>/<rel>`` (a video file, or a folder of frame images) gives
``<out_root>/<rel without extension>.txt``: one ``cell start_frame end_frame`` line per fixation
(``docs/methods/saccade.md``, "Scanpaths (G-Eymol)"). ``--list`` reads the first field of each row
(comma- or whitespace-separated; a ``path`` header is skipped) as a path relative to ``--data_root``.

Videos run in ``--workers`` processes with a progress bar; a file is written atomically (temporary file,
then rename), and a re-run skips the videos whose file exists (``--overwrite`` recomputes them). A video
that cannot be read is reported and the others go on; the failures are listed at the end and in
``<out_root>/scanpaths_failures.tsv``, and the exit status is then 1. Each video's seed is derived from
``--seed`` and its relative path, so the files do not depend on ``--workers`` or on the order.
"""

from __future__ import annotations

import argparse
import os
import sys
from multiprocessing import get_context

from snappix.data.video import VIDEO_SUFFIXES, find_videos, parse_formats
from snappix.scanpaths.field import LOOKUPS
from snappix.scanpaths.geymol import GEymolParams

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
FAILURES_FILE = "scanpaths_failures.tsv"
_HEADERS = {"path", "video", "filename", "file", "name"}


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every flag's default in its help."""


def build_parser() -> argparse.ArgumentParser:
    d = GEymolParams()
    p = argparse.ArgumentParser(prog="python -m snappix.tools.scanpaths", description=__doc__,
                                formatter_class=_Formatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video_root", help="tree of video files")
    src.add_argument("--frames_root", help="tree of frame folders (<class>/<video>/00001.jpg, ...)")
    src.add_argument("--list", help="list file (CSV or whitespace): first field = video file or frame folder")
    p.add_argument("--data_root", default="", help="prefix of the --list paths")
    p.add_argument("--out_root", required=True, help="output tree of <video>.txt files (scan_idx_7)")
    p.add_argument("--ext", default=",".join(VIDEO_SUFFIXES), help="video extensions (with --video_root)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1) - 1), help="processes")
    p.add_argument("--overwrite", action="store_true", help="recompute videos whose file exists")
    p.add_argument("--limit", type=int, default=None, help="only the first N inputs (sorted)")
    p.add_argument("--seed", type=int, default=0, help="base seed (combined with each video's path)")
    p.add_argument("--max_frames", type=int, default=None, help="only the first N frames of each video")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate (default: the video's; 25 for frame folders without fps.txt)")
    g = p.add_argument_group("G-Eymol (defaults of the released code)")
    g.add_argument("--long_side", type=int, default=d.long_side, help="working resolution: longer side, px")
    g.add_argument("--alpha", type=float, default=d.alpha, help="total weight of the 8 channels")
    g.add_argument("--dissipation", type=float, default=d.dissipation,
                   help="velocity damping of the gaze ODE per frame")
    g.add_argument("--ior_decay", type=float, default=d.ior_decay,
                   help="inhibition of return update: min(decay * IOR + blob, 1)")
    g.add_argument("--ior_radius", type=int, default=d.ior_radius, help="pixels of the working resolution")
    g.add_argument("--saccades_per_second", type=float, default=d.saccades_per_second, help="IOR updates per s")
    g.add_argument("--rtol", type=float, default=d.rtol, help="relative tolerance of odeint")
    g.add_argument("--atol", type=float, default=d.atol, help="absolute tolerance of odeint")
    g.add_argument("--motion", action="store_true", help="add a Farneback optical-flow magnitude channel")
    g.add_argument("--motion_alpha", type=float, default=d.motion_alpha, help="weight of the --motion channel")
    g.add_argument("--lookup", choices=LOOKUPS, default=d.lookup, help="force read between pixels")
    f = p.add_argument_group("fixations")
    f.add_argument("--max_dist", type=float, default=25.0, help="dispersion threshold, source pixels")
    f.add_argument("--min_dur", type=float, default=50.0, help="shortest fixation, ms")
    f.add_argument("--grid", type=int, default=7, help="cells per side of the grid")
    return p


def params_from(args) -> GEymolParams:
    """The :class:`GEymolParams` of parsed flags (raises ValueError for invalid values)."""
    return GEymolParams(long_side=args.long_side, alpha=args.alpha, dissipation=args.dissipation,
                        ior_decay=args.ior_decay, ior_radius=args.ior_radius,
                        saccades_per_second=args.saccades_per_second, rtol=args.rtol, atol=args.atol,
                        motion=args.motion, motion_alpha=args.motion_alpha, lookup=args.lookup)


def frame_folders(root: str) -> list[str]:
    """Sorted relative paths of the folders under ``root`` that hold frame images."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if any(f.lower().endswith(IMAGE_EXTS) for f in filenames):
            out.append(os.path.relpath(dirpath, root))
    return sorted(out)


def list_paths(path: str) -> list[str]:
    """First field of each row of a CSV / whitespace list (blank lines, ``#`` comments, a header skipped).

    Raises:
        FileNotFoundError: no such list file.
    """
    with open(path, encoding="utf-8-sig") as fh:
        lines = fh.read().splitlines()
    out, first_row = [], True
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        first = (text.split(",")[0] if "," in text else text.split()[0]).strip().strip('"')
        if first_row and first.lower() in _HEADERS:
            first_row = False
            continue
        first_row = False
        out.append(first)
    return out


def find_inputs(args) -> tuple[str, list[str]]:
    """``(root, relative paths)`` of the inputs selected by the flags."""
    if args.video_root:
        exts = parse_formats(args.ext)
        rels = [os.path.relpath(p, args.video_root)
                for p in find_videos(args.video_root, exts, exclude=args.out_root, follow_links=False)]
        return args.video_root, sorted(rels)
    if args.frames_root:
        return args.frames_root, frame_folders(args.frames_root)
    rels = []
    for rel in list_paths(args.list):
        if os.path.isabs(rel):
            if not args.data_root or os.path.relpath(rel, args.data_root).startswith(".."):
                raise ValueError(f"{args.list}: absolute path {rel} is not under --data_root; the output tree "
                                 f"mirrors paths relative to --data_root")
            rel = os.path.relpath(rel, args.data_root)
        rels.append(rel)
    return args.data_root or ".", rels


def output_path(out_root: str, rel: str) -> str:
    """``<out_root>/<rel without its video extension>.txt`` (a frame folder keeps its whole name)."""
    stem, ext = os.path.splitext(rel)
    if ext.lower() not in VIDEO_SUFFIXES:
        stem = rel
    return os.path.join(out_root, stem + ".txt")


def _work(job) -> tuple[str, str, int, int]:
    """One video: ``(rel, error or "", frames, fixations)``; the file is written atomically."""
    rel, src, dst, opts = job
    import cv2

    from snappix.scanpaths.pipeline import compute_scanpath, video_seed
    from snappix.scanpaths.scanfile import write_scanpath

    cv2.setNumThreads(1)
    try:
        res = compute_scanpath(src, opts["params"], video_seed(opts["seed"], rel), opts["fps"], opts["max_frames"],
                               opts["max_dist"], opts["min_dur"], opts["grid"])
        write_scanpath(dst, res.rows, opts["grid"])
        return rel, "", len(res.gaze), len(res.rows)
    except Exception as exc:  # reported per video; the run continues
        return rel, f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("\t", " "), 0, 0


def _jobs(args, root: str, rels: list[str], opts: dict) -> tuple[list, int]:
    jobs, skipped = [], 0
    for rel in rels:
        dst = output_path(args.out_root, rel)
        if os.path.isfile(dst) and not args.overwrite:
            skipped += 1
            continue
        jobs.append((rel, os.path.join(root, rel), dst, opts))
    return jobs, skipped


def _report(args, failures: list[tuple[str, str]], done: int, skipped: int, short: int) -> int:
    path = os.path.join(args.out_root, FAILURES_FILE)
    print(f"scanpaths: {done} written, {skipped} already done (skipped), {len(failures)} failed -> {args.out_root}")
    if short:
        print(f"note: {short} video(s) have fewer than 2 fixations; the reference's np.loadtxt loader needs 2 "
              f"lines (snappix.scanpaths.read_scanpath reads any number)")
    if not failures:
        if os.path.isfile(path):
            os.remove(path)
        return 0
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{rel}\t{err}\n" for rel, err in failures)
    print(f"{len(failures)} video(s) failed (also in {path}):", file=sys.stderr)
    for rel, err in failures:
        print(f"  {rel}: {err}", file=sys.stderr)
    return 1


def main(argv=None) -> int:
    """Command line; returns 0, 1 (some videos failed) or 2 (bad flags or no input)."""
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    try:
        params = params_from(args)
        root, rels = find_inputs(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rels = rels[: args.limit]
    if not rels:
        print("error: no input video or frame folder found", file=sys.stderr)
        return 2
    opts = dict(params=params, seed=args.seed, fps=args.fps, max_frames=args.max_frames, max_dist=args.max_dist,
                min_dur=args.min_dur, grid=args.grid)
    jobs, skipped = _jobs(args, root, rels, opts)
    os.makedirs(args.out_root, exist_ok=True)
    failures, done, short = [], 0, 0
    bar = tqdm(total=len(jobs), desc="scanpaths", unit="video")
    pool = get_context("spawn").Pool(args.workers) if args.workers > 1 and len(jobs) > 1 else None
    try:
        results = pool.imap_unordered(_work, jobs) if pool else map(_work, jobs)
        for rel, err, _frames, n_fix in results:
            if err:
                failures.append((rel, err))
            else:
                done += 1
                short += n_fix < 2
            bar.update(1)
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
    return _report(args, sorted(failures), done, skipped, short)


if __name__ == "__main__":
    sys.exit(main())
