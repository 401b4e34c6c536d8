"""SnapPix video preprocessing: sRGB video -> linear grey, short side 112 (SnapPix, DAC'25; docs/methods/snappix.md §7).

SnapPix (DAC'25) simulates a coded-exposure sensor, which integrates *linear* light. Its training videos
are therefore converted once, offline, to linear-intensity grey videos. For every decoded frame, in this
order:

1. **sRGB -> linear** through a 256-entry uint8 lookup table applied to each BGR channel
   (:func:`srgb_to_linear_lut`): for ``v = i / 255``,
   ``lin = v / 12.92`` if ``v <= 0.04045`` else ``((v + 0.055) / 1.055) ** 2.4``;
   ``LUT[i] = uint8(clip(lin * 255, 0, 255))``, truncated, not rounded.
2. **Resize** with OpenCV's default bilinear interpolation (``cv2.INTER_LINEAR``) so the short side is
   ``short_side`` (default 112): ``scale = short_side / min(H, W)``, long side ``int(long * scale)``
   (:func:`output_size`). This happens after linearisation.
3. **Grey** with ``cv2.COLOR_BGR2GRAY`` (``Y = 0.299 R + 0.587 G + 0.114 B``) on the linear values.

The grey frames are written as an ``.mp4`` with the source's frame rate, under the same relative path
(``IN/a/b/x.webm -> OUT/a/b/x.mp4``) or, with ``flat=True``, as SnapPix did, ``OUT/<stem>.mp4``.
Sources are read with ``cv2.VideoCapture`` (BGR uint8), as in SnapPix.

Codec
-----
Default ``libx264``: H.264 **lossless** (``qp=0``), 4:0:0 grey (``pix_fmt=gray``), flagged **full range**
(``color_range=JPEG``), written through PyAV. Decoding it gives back exactly the grey values computed
by the three steps above, with decord (``VideoReader(...)[i][..., 0]``, the training reader), with PyAV
(``to_ndarray(format="rgb24")[..., 0]`` or ``format="gray"``) and with ``cv2.VideoCapture``.
Measured on the five clips of ``shared/data/videos`` (demo.mp4, demo_spatiotemporal_det.mp4,
rawvideo_dataset_part_0.mp4, test.mp4, test.avi; 32-300 frames, 340x256 and 320x240), decoded
output versus the formula: **max abs error 0, mean 0.000 grey levels** for all three readers.

Why not the alternatives (same clips, same measurement):

* ``mp4v`` (OpenCV ``VideoWriter``, MPEG-4 part 2, what SnapPix used; available here as
  ``codec="mp4v"`` for compatibility): lossy, **max abs error 30-41, mean 1.66-2.32 levels** per clip,
  25-36 % of pixels off by more than 2. OpenCV's writer also drops the last row/column of odd sizes
  (UCF101 320x240 -> 149x112 is stored as 148x112).
* lossy H.264 (``crf`` 10 / 16, measured on the three 340x256 demo clips): max 12-29 / 35-57, mean
  0.5-1.2 / 1.0-2.1 levels. The linearised frames are dark with fine detail, which lossy coding does
  not keep within a couple of levels.
* lossless H.264 in the default *limited* range (writing grey through ``yuv420p`` as libswscale
  does): max 1, mean about 0.4 levels (the 255 -> 219 levels quantisation). Writing the grey values
  raw into Y *without* the full-range flag is much worse (max 20, mean 5.5-7.7: every reader expands
  16-235 to 0-255), which is why the flag matters.

Cost: lossless files are 3.2-3.7x the ``mp4v`` ones (demo.mp4, 280 frames at 148x112: 1.29 MB versus
0.38 MB; test.mp4, 300 frames: 2.4 MB versus 0.65 MB), i.e. 4.5-8 kB per frame; encoding (x264
``medium``) takes well under the decoding time of the source.

Operation (:func:`preprocess_tree`, CLI :func:`main`): a process pool (``cores``), a tqdm bar, outputs
that already exist are skipped (resumable; each output is written to a hidden ``.<stem>.part.mp4``
in the same folder and renamed with :func:`os.replace` only when complete), failures (unopenable
file, zero frames, encoder error) go to ``OUT/preprocess_failed.txt`` (``path<TAB>reason``) and the
run continues; a source that decodes to fewer frames than its header announces is converted and listed in
``OUT/preprocess_partial.txt`` (``path<TAB>truncated: N of M frames decoded``; with ``--strict`` it is a
failure and not converted), output-name collisions go to ``OUT/preprocess_duplicate.txt``
(``skipped<TAB>kept<TAB>output``), and a summary is printed at the end.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from snappix.data.preprocessing import output_size, preprocess_frame, srgb_to_linear_lut  # noqa: F401  (re-exported)
from snappix.tools.gray_video_writer import CODECS, GrayVideoWriter, verify_output
from snappix.tools.preprocess_report import (DUPLICATE_LOG, FAILED_LOG, PARTIAL_LOG, Summary,  # noqa: F401
                                             failure_reason)
from snappix.tools.source_frames import header_frame_count, is_partial

__all__ = [
    "CODECS",
    "FAILED_LOG",
    "DUPLICATE_LOG",
    "Job",
    "Summary",
    "VideoReadError",
    "VideoResult",
    "GrayVideoWriter",
    "srgb_to_linear_lut",
    "output_size",
    "preprocess_frame",
    "read_frames",
    "preprocess_video",
    "verify_output",
    "parse_formats",
    "find_videos",
    "plan_jobs",
    "preprocess_tree",
    "main",
]



class VideoReadError(RuntimeError):
    """A source video cannot be opened, has no usable frame rate, or yields zero frames."""


@dataclass(frozen=True)
class VideoResult:
    """What :func:`preprocess_video` wrote: ``frames`` frames of ``height x width`` at ``fps`` frames/s;
    ``expected``: the source's header frame count when decoding stopped before it (a partial video)."""

    frames: int
    fps: Fraction
    height: int
    width: int
    expected: int | None = None


# ----------------------------------------------------------------------------------------------
# Reading and writing one video
# ----------------------------------------------------------------------------------------------


def _probe_fps_pyav(path: Path) -> Fraction | None:
    """Average frame rate of the first video stream according to PyAV, or None."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return Fraction(rate) if rate else None
    except Exception:  # noqa: BLE001 - a probe: any failure just means "unknown"
        return None


def _open_capture(path: Path) -> tuple[cv2.VideoCapture, Fraction]:
    """Open ``path`` with OpenCV; return the capture and its frame rate as a fraction (e.g. 30000/1001)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoReadError("cv2.VideoCapture cannot open the file")
    fps = cap.get(cv2.CAP_PROP_FPS)
    if fps and np.isfinite(fps) and fps > 0:
        rate = Fraction(fps).limit_denominator(1001)  # 29.97002997 -> 30000/1001, 25.0 -> 25
    else:
        rate = _probe_fps_pyav(path)
        if rate is None or rate <= 0:
            cap.release()
            raise VideoReadError(f"no usable frame rate (cv2 reports {fps!r})")
    return cap, rate


def read_frames(path: str | os.PathLike) -> tuple[Fraction, Iterator[np.ndarray]]:
    """Open a video with ``cv2.VideoCapture`` (as SnapPix does) and iterate over its frames.

    Args:
        path: any container/codec the OpenCV FFmpeg backend reads (.mp4, .avi, .webm, ...).

    Returns:
        ``(fps, frames)``: the frame rate as a :class:`fractions.Fraction` (OpenCV's value, with
        denominators up to 1001 recovered, e.g. 30000/1001), and an iterator of ``(H, W, 3)`` uint8 BGR
        frames that releases the capture when exhausted or closed. Decoding stops at the first frame
        OpenCV cannot deliver.

    Raises:
        VideoReadError: the file cannot be opened or has no usable frame rate.
    """
    cap, fps = _open_capture(Path(path))

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                yield frame
        finally:
            cap.release()

    return fps, frames()


def _part_path(dst: Path) -> Path:
    """Hidden temporary name next to ``dst`` (same suffix so the container is chosen the same way)."""
    return dst.with_name(f".{dst.stem}.part{dst.suffix}")


def preprocess_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    short_side: int = 112,
    codec: str = "libx264",
    preset: str = "medium",
    threads: int = 0,
    verify: bool = False,
    allow_partial: bool = True,
) -> VideoResult:
    """Convert one video the SnapPix way (LUT -> resize -> grey per frame) and write it atomically.

    The output is first written to ``.<stem>.part<suffix>`` in ``dst``'s folder (created if needed) and
    moved to ``dst`` with :func:`os.replace` only after the last frame, so ``dst`` either does not exist
    or is complete; the partial file is removed on any error, interruption included.

    Args:
        src: source video (read with ``cv2.VideoCapture``, BGR uint8 frames, sRGB).
        dst: output path, normally ``*.mp4``; overwritten if it exists.
        short_side: output short side in pixels (SnapPix: 112); see :func:`output_size`.
        codec, preset, threads: see :class:`GrayVideoWriter`.
        verify: re-open the finished file with decord and check its frame count and size.
        allow_partial: keep an output whose source decoded to fewer frames than its header announces
            (:func:`~snappix.tools.source_frames.is_partial`; ``VideoResult.expected`` is then set); False
            (``--strict``) raises instead and writes nothing.

    Returns:
        :class:`VideoResult` with the number of frames written (= frames decoded from ``src``), the
        frame rate (= OpenCV's rate of ``src``) and the output size.

    Raises:
        VideoReadError: ``src`` cannot be opened, has no frame rate, decodes to zero frames, or (without
            ``allow_partial``) stops before its header's frame count (reason ``truncated: ...``).
        RuntimeError: encoding or (with ``verify``) decoding back failed.
    """
    src, dst = Path(src), Path(dst)
    fps, frames = read_frames(src)
    try:
        first = next(frames, None)
        if first is None:
            raise VideoReadError("zero frames decoded")
        gray = preprocess_frame(first, short_side)
        dst.parent.mkdir(parents=True, exist_ok=True)
        part = _part_path(dst)
        try:
            with GrayVideoWriter(part, fps, gray.shape[0], gray.shape[1], codec, preset, threads) as writer:
                writer.write(gray)
                for bgr in frames:
                    writer.write(preprocess_frame(bgr, short_side))
            count = writer.frames
            expected = header_frame_count(src)
            partial = is_partial(count, expected)
            if partial and not allow_partial:
                raise VideoReadError(f"truncated: decoding stopped after {count} of the {expected} frames "
                                     f"its header announces")
            if verify:
                n, h, w = verify_output(part)
                expected = (count,) + tuple(d - d % 2 if codec == "mp4v" else d for d in gray.shape)
                if (n, h, w) != expected:
                    raise RuntimeError(
                        f"verification: decord reads {n} frames of {h}x{w}, wrote {count} of {gray.shape}"
                    )
            os.replace(part, dst)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    finally:
        frames.close()
    return VideoResult(frames=count, fps=fps, height=gray.shape[0], width=gray.shape[1],
                       expected=expected if partial else None)


# ----------------------------------------------------------------------------------------------
# Whole folders
# ----------------------------------------------------------------------------------------------


def parse_formats(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Normalise ``".mp4,.avi"`` / ``["mp4", ".AVI"]`` to lower-case dotted suffixes ``(".mp4", ".avi")``.

    Raises:
        ValueError: no extension given.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in items:
        item = item.strip().lower()
        if item:
            item = item if item.startswith(".") else "." + item
            if item not in out:
                out.append(item)
    if not out:
        raise ValueError(f"no input format given in {spec!r}")
    return tuple(out)


def find_videos(root: str | os.PathLike, formats: Sequence[str], exclude: str | os.PathLike | None = None) -> list[Path]:
    """All files under ``root`` (recursively, following folder links) whose suffix is in ``formats``.

    Matching is case-insensitive; hidden ``.*.part.*`` temporaries are ignored; the folder ``exclude``
    (e.g. an output folder inside the input folder) is not entered. Returns sorted paths.
    """
    formats = parse_formats(formats)
    excluded = Path(exclude).resolve() if exclude is not None else None
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        if excluded is not None:
            dirs[:] = [d for d in dirs if Path(folder, d).resolve() != excluded]
        for name in files:
            if name.startswith(".") and ".part." in name:
                continue
            if os.path.splitext(name)[1].lower() in formats:
                found.append(Path(folder, name))
    return sorted(found)


@dataclass(frozen=True)
class Job:
    """One conversion: ``src`` (input video) -> ``dst`` (output ``.mp4``)."""

    src: Path
    dst: Path


def plan_jobs(
    in_root: str | os.PathLike, out_root: str | os.PathLike, videos: Sequence[Path], flat: bool = False
) -> tuple[list[Job], list[tuple[Path, Path, Path]]]:
    """Map input videos to output paths and set aside name collisions.

    ``IN/a/b/x.webm -> OUT/a/b/x.mp4``; with ``flat``, ``OUT/x.mp4`` (SnapPix's layout). When several
    inputs map to one output (``test.avi`` and ``test.mp4``), the first in sorted order is kept.

    Returns:
        ``(jobs, duplicates)``; each duplicate is ``(skipped_src, kept_src, dst)``.
    """
    in_root, out_root = Path(in_root), Path(out_root)
    owner: dict[Path, Path] = {}
    jobs, duplicates = [], []
    for src in sorted(videos):
        rel = Path(src.stem + ".mp4") if flat else Path(src).relative_to(in_root).with_suffix(".mp4")
        dst = out_root / rel
        if dst in owner:
            duplicates.append((src, owner[dst], dst))
            continue
        owner[dst] = src
        jobs.append(Job(src, dst))
    return jobs, duplicates


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def _run_job(args: tuple) -> tuple[str, str, bool, str]:
    """Pool task: convert one video; never raises (returns ``(src, dst, ok, info)``: ``info`` is the frame
    count, ``written/header`` for a partial video, or the failure reason)."""
    src, dst, kwargs = args
    try:
        result = preprocess_video(src, dst, **kwargs)
        return src, dst, True, f"{result.frames}/{result.expected}" if result.expected else str(result.frames)
    except Exception as exc:  # noqa: BLE001 - logged per file, the run goes on
        return src, dst, False, failure_reason(src, exc, VideoReadError)


def preprocess_tree(
    in_root: str | os.PathLike,
    out_root: str | os.PathLike,
    input_formats: str | Sequence[str] = (".mp4",),
    short_side: int = 112,
    flat: bool = False,
    codec: str = "libx264",
    preset: str = "medium",
    cores: int | None = None,
    overwrite: bool = False,
    verify: bool = False,
    progress: bool = True,
    allow_partial: bool = True,
) -> Summary:
    """Preprocess every video under ``in_root`` into ``out_root`` (SnapPix, DAC'25, §7.1).

    Existing outputs are skipped unless ``overwrite``; failures are written to
    ``out_root/preprocess_failed.txt`` as they happen (``src<TAB>reason``) and collisions to
    ``out_root/preprocess_duplicate.txt`` (``skipped<TAB>kept<TAB>output``); both files are rewritten
    on each run, empty when there is nothing to report. ``cores > 1`` uses a spawn-context process
    pool with one single-threaded worker per core.

    Args:
        in_root: input folder (walked recursively).
        out_root: output folder (created).
        input_formats: suffixes, e.g. ``".mp4,.avi"`` or ``(".webm",)``.
        short_side, codec, preset, verify: see :func:`preprocess_video`.
        flat: ``OUT/<stem>.mp4`` instead of mirroring the folder structure.
        cores: worker processes, default ``min(8, os.cpu_count())``.
        overwrite: redo outputs that exist.
        progress: show a tqdm bar.

    Returns:
        :class:`Summary`.

    Raises:
        FileNotFoundError: ``in_root`` does not exist.
        NotADirectoryError: ``in_root`` is not a folder.
        ValueError: bad ``input_formats``, ``codec``, ``short_side`` or ``cores``.
    """
    from tqdm import tqdm

    in_root, out_root = Path(in_root), Path(out_root)
    if not in_root.exists():
        raise FileNotFoundError(f"input folder does not exist: {in_root}")
    if not in_root.is_dir():
        raise NotADirectoryError(f"input must be a folder: {in_root}")
    formats = parse_formats(input_formats)
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {CODECS}")
    if short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    cores = min(8, os.cpu_count() or 1) if cores is None else cores
    if cores < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")

    out_root.mkdir(parents=True, exist_ok=True)
    videos = find_videos(in_root, formats, exclude=out_root)
    jobs, duplicates = plan_jobs(in_root, out_root, videos, flat)
    summary = Summary(found=len(videos), duplicates=duplicates)
    with open(out_root / DUPLICATE_LOG, "w", encoding="utf-8") as fh:
        fh.writelines(f"{s}\t{k}\t{d}\n" for s, k, d in duplicates)

    todo = []
    for job in jobs:
        if job.dst.exists() and not overwrite:
            summary.skipped_existing += 1
        else:
            todo.append(job)
    kwargs = dict(short_side=short_side, codec=codec, preset=preset, verify=verify, allow_partial=allow_partial,
                  threads=1 if cores > 1 else 0)
    tasks = [(str(j.src), str(j.dst), kwargs) for j in todo]

    with open(out_root / FAILED_LOG, "w", encoding="utf-8") as failed_log, \
            open(out_root / PARTIAL_LOG, "w", encoding="utf-8") as partial_log, tqdm(
        total=len(tasks), desc="preprocess", unit="video", disable=not progress, dynamic_ncols=True
    ) as bar:

        def record(res: tuple[str, str, bool, str]) -> None:
            src, _dst, ok, info = res
            if ok:
                summary.converted += 1
                if "/" in info:  # partial: kept, listed with its counts
                    written, expected = (int(x) for x in info.split("/"))
                    summary.partial.append((Path(src), written, expected))
                    partial_log.write(f"{src}\ttruncated: {written} of {expected} frames decoded\n")
                    partial_log.flush()
                    bar.write(f"partial: {src}: {written} of {expected} frames decoded", file=sys.stderr)
            else:
                summary.failed.append((Path(src), info))
                failed_log.write(f"{src}\t{info}\n")
                failed_log.flush()
                bar.write(f"failed: {src}: {info}", file=sys.stderr)
            bar.update(1)

        if cores == 1 or len(tasks) <= 1:
            for task in tasks:
                record(_run_job(task))
        else:
            with mp.get_context("spawn").Pool(min(cores, len(tasks)), initializer=_init_worker) as pool:
                for res in pool.imap_unordered(_run_job, tasks):
                    record(res)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI of ``preprocess_data.py``: see :func:`snappix.tools.preprocess_cli.main`."""
    from snappix.tools.preprocess_cli import main as cli_main

    return cli_main(argv)
