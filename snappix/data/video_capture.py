"""Reading source videos front to back with OpenCV, as SnapPix's preprocessing does.

The training reader is :func:`snappix.data.video.open_video` (random access by frame index). Offline
preprocessing (``preprocess_data.py``, :mod:`snappix.tools.preprocess`) instead decodes each source
once, in order, with ``cv2.VideoCapture`` (BGR uint8), like SnapPix (DAC'25; ``docs/methods/snappix.md``
§7): :func:`read_frames`.

OpenCV stops at the first frame it cannot deliver, so a file that opens but breaks mid-stream looks
like a short video. :func:`header_frame_count` reads the frame count stored in the container (MP4
``stts`` / AVI index, PyAV's ``stream.frames``) and :func:`is_partial` compares it with the frames
decoded. Containers without a stored count (WebM/Matroska) give ``None``: they cannot be checked this
way, and no estimate from duration x fps is used (variable-frame-rate files would look partial).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

__all__ = ["PARTIAL_TOLERANCE", "VideoReadError", "read_frames", "header_frame_count", "is_partial"]

#: frames a decoder may drop against the header (edit lists, a final B-frame) before a video is partial
PARTIAL_TOLERANCE = 1


class VideoReadError(RuntimeError):
    """A source video cannot be opened, has no usable frame rate, or yields zero frames."""


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
    """Open ``path`` with OpenCV; return the capture and its frame rate as a fraction (e.g. 30000/1001).

    Raises:
        VideoReadError: OpenCV cannot open the file, and no positive frame rate is known from OpenCV or PyAV.
    """
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


def header_frame_count(path: str | os.PathLike) -> int | None:
    """The frame count stored in the container of ``path``'s first video stream (an int > 0), or ``None``
    when the container stores none or cannot be opened by PyAV. Never raises."""
    try:
        import av

        with av.open(os.fspath(path)) as container:
            frames = int(container.streams.video[0].frames or 0)
    except Exception:  # noqa: BLE001 - a probe: any failure means "unknown"
        return None
    return frames if frames > 0 else None


def is_partial(decoded: int, expected: int | None) -> bool:
    """True when ``decoded`` frames fall short of the header's ``expected`` by more than
    :data:`PARTIAL_TOLERANCE`; False when ``expected`` is ``None`` (unknown)."""
    return expected is not None and decoded < expected - PARTIAL_TOLERANCE
