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

The codec (default: lossless, full-range H.264 grey) and why it was chosen over SnapPix's ``mp4v``
are described, with measurements, in :mod:`snappix.data.video_writer`; sources are read by
:func:`snappix.data.video_capture.read_frames` and found by :func:`snappix.data.video.find_videos`.

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
from typing import Sequence

import cv2

from snappix.data.preprocessing import output_size, preprocess_frame, srgb_to_linear_lut  # noqa: F401  (re-exported)
from snappix.data.video import find_videos, parse_formats  # noqa: F401  (re-exported)
from snappix.data.video_capture import VideoReadError, header_frame_count, is_partial, read_frames
from snappix.data.video_writer import CODECS, GrayVideoWriter, verify_output
from snappix.tools.preprocess_report import (DUPLICATE_LOG, FAILED_LOG, PARTIAL_LOG, Summary,  # noqa: F401
                                             failure_reason)

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
# Converting one video
# ----------------------------------------------------------------------------------------------


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
            (:func:`~snappix.data.video_capture.is_partial`; ``VideoResult.expected`` is then set); False
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
    in_root, out_root = Path(in_root), Path(out_root)
    formats, cores = _checked_options(in_root, input_formats, codec, short_side, cores)
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
    _convert_all(tasks, cores, out_root, summary, progress)
    return summary


def _checked_options(in_root: Path, input_formats: str | Sequence[str], codec: str, short_side: int,
                     cores: int | None) -> tuple[tuple[str, ...], int]:
    """Validate :func:`preprocess_tree`'s options; return the parsed formats and the worker count.

    Raises:
        FileNotFoundError / NotADirectoryError: ``in_root`` is missing / not a folder.
        ValueError: bad ``input_formats``, ``codec``, ``short_side`` or ``cores``.
    """
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
    return formats, cores


def _convert_all(tasks: list[tuple], cores: int, out_root: Path, summary: Summary, progress: bool) -> None:
    """Run the :func:`_run_job` ``tasks`` (in a spawn pool of ``cores`` workers when ``cores > 1``), record
    each outcome in ``summary`` and in ``out_root``'s failure / partial logs (rewritten), with a tqdm bar."""
    from tqdm import tqdm

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


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI of ``preprocess_data.py``: see :func:`snappix.tools.preprocess_cli.main`."""
    from snappix.tools.preprocess_cli import main as cli_main

    return cli_main(argv)
