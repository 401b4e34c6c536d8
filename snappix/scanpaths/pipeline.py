"""Scanpath of one video file or frame folder: decode, G-Eymol gaze, fixations, ``scan_idx`` rows.

Video files are decoded front to back with OpenCV (:func:`snappix.data.video_capture.read_frames`, BGR),
frame folders with :func:`snappix.data.video.open_video` (frame ``i`` = the ``i``-th image by name, so
the frame numbers of the rows index the sorted frame files, as the reference's loader does).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .fixations import detect_fixations, fixation_rows
from .geymol import GEymolParams, simulate_gaze

__all__ = ["ScanpathResult", "video_seed", "source_frames", "compute_scanpath"]

#: frames per second assumed when a frame folder has no ``fps.txt`` and no ``fps`` is given (UCF101's)
DEFAULT_FPS = 25.0


@dataclass
class ScanpathResult:
    """Scanpath of one video.

    Attributes:
        rows: int64 ``(N, 3)`` ``[cell, start_frame, end_frame]``.
        gaze: float64 ``(T, 2)`` gaze (row, col) per frame in source pixels.
        fps: the frame rate used; size: source ``(H, W)``.
    """

    rows: np.ndarray
    gaze: np.ndarray
    fps: float
    size: tuple[int, int]


def video_seed(seed: int, rel_path: str) -> np.random.SeedSequence:
    """The seed of one video: ``seed`` and the CRC-32 of its relative path (``/``-separated), so a video's
    scanpath does not depend on the order, the worker or the other videos of a run."""
    key = str(rel_path).replace(os.sep, "/")
    return np.random.SeedSequence([int(seed), zlib.crc32(key.encode("utf-8"))])


def _folder_frames(path: str, chunk: int = 32) -> tuple[float, Iterator[np.ndarray]]:
    from snappix.data.video import open_video

    reader = open_video(path, backend="frames")

    def frames() -> Iterator[np.ndarray]:
        try:
            for start in range(0, reader.num_frames, chunk):
                idx = np.arange(start, min(start + chunk, reader.num_frames))
                for rgb in reader.get_frames(idx):
                    yield np.ascontiguousarray(rgb[..., ::-1])
        finally:
            reader.close()

    return float(reader.fps or 0.0), frames()


def source_frames(path: str | os.PathLike) -> tuple[float, Iterator[np.ndarray]]:
    """``(fps, frames)``: uint8 ``(H, W, 3)`` BGR frames of a video file or frame folder, read lazily.

    ``fps`` is 0.0 when unknown (a frame folder without ``fps.txt``).

    Raises:
        snappix.data.video_capture.VideoReadError: a video file OpenCV cannot open.
        snappix.data.video.VideoDecodeError: a missing, empty or unreadable input.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _folder_frames(path)
    from snappix.data.video import VideoDecodeError
    from snappix.data.video_capture import read_frames

    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")
    fps, frames = read_frames(path)
    return float(fps), frames


def compute_scanpath(path: str | os.PathLike, params: GEymolParams | None = None,
                     seed: int | np.random.SeedSequence = 0, fps: float | None = None,
                     max_frames: int | None = None, max_dist: float = 25.0, min_dur: float = 50.0,
                     grid: int = 7) -> ScanpathResult:
    """G-Eymol scanpath of one video file or frame folder.

    Args:
        path: video file or frame folder.
        params: :class:`~snappix.scanpaths.geymol.GEymolParams`; seed: start-state seed (see :func:`video_seed`).
        fps: frame rate to use (None: the video's, 25 when unknown).
        max_frames: only the first frames (None: all).
        max_dist, min_dur: fixation detection, pixels of the source video and milliseconds.
        grid: the cell grid side (7).

    Returns:
        a :class:`ScanpathResult`.

    Raises:
        snappix.data.video.VideoDecodeError, snappix.data.video_capture.VideoReadError: unreadable input.
        ValueError: the input has no frame, or frames of different sizes.
    """
    src_fps, frames = source_frames(path)
    use_fps = float(fps) if fps else (src_fps if src_fps > 0 else DEFAULT_FPS)
    gaze, size = simulate_gaze(frames, use_fps, params, seed, max_frames)
    if len(gaze) == 0:
        raise ValueError(f"{os.fspath(path)}: no frame could be decoded")
    fixations = detect_fixations(gaze, use_fps, max_dist, min_dur)
    return ScanpathResult(fixation_rows(fixations, size[0], size[1], grid), gaze, use_fps, size)
