"""Writing grey videos: :class:`GrayVideoWriter` (lossless H.264 or SnapPix's mp4v) and :func:`verify_output`.

Why lossless, full-range H.264 grey is the default is measured in :mod:`snappix.tools.preprocess`.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

CODECS = ("libx264", "mp4v")
_AVCOL_RANGE_JPEG = 2  # AVColorRange: full range (0-255), as opposed to MPEG/limited (16-235)


class GrayVideoWriter:
    """Writes ``(h, w)`` uint8 grey frames to a video file at a fixed frame rate.

    ``codec="libx264"`` (default): PyAV, H.264 lossless (``qp=0``), ``pix_fmt=gray``, full-range flag:
    decoders (decord, PyAV, OpenCV) return the written values exactly. ``codec="mp4v"``: OpenCV
    ``VideoWriter`` with fourcc ``mp4v``, ``isColor=False``, as SnapPix (lossy; OpenCV drops the last
    row/column of odd sizes). The container follows the file suffix (``.mp4``). Use as a context manager; the frame
    size is fixed by the constructor.

    Args:
        path: output file; its folder must exist.
        fps: frames per second (> 0), a Fraction for exact NTSC rates.
        height, width: frame size in pixels.
        codec: one of :data:`CODECS`.
        preset: x264 speed preset (``ultrafast`` ... ``veryslow``); lossless either way, slower presets
            give slightly smaller files (``medium``: 1.29 MB, ``ultrafast``: 1.60 MB on demo.mp4).
        threads: encoder threads for libx264, 0 = automatic.

    Raises:
        ValueError: unknown codec, non-positive size or fps.
        RuntimeError: the encoder cannot be opened (mp4v), or a frame has the wrong shape/dtype.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: Fraction | float,
        height: int,
        width: int,
        codec: str = "libx264",
        preset: str = "medium",
        threads: int = 0,
    ) -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose one of {CODECS}")
        if height < 1 or width < 1:
            raise ValueError(f"bad frame size {height}x{width}")
        fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path, self.codec, self.height, self.width, self.fps = Path(path), codec, height, width, fps
        self.frames = 0
        if codec == "mp4v":
            self._cv = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height), isColor=False
            )
            if not self._cv.isOpened():
                raise RuntimeError(f"OpenCV cannot open an mp4v writer for {self.path}")
        else:
            import av

            self._container = av.open(str(self.path), mode="w")
            try:
                stream = self._container.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "gray"
                stream.codec_context.color_range = _AVCOL_RANGE_JPEG
                stream.codec_context.thread_count = threads
                stream.options = {"qp": "0", "preset": preset}
            except BaseException:
                self._container.close()
                raise
            self._stream = stream

    def write(self, gray: np.ndarray) -> None:
        """Append one ``(height, width)`` uint8 frame (0-255)."""
        if gray.dtype != np.uint8 or gray.shape != (self.height, self.width):
            raise RuntimeError(
                f"frame {self.frames}: expected uint8 {(self.height, self.width)}, got {gray.dtype} {gray.shape}"
            )
        if self.codec == "mp4v":
            self._cv.write(gray)
        else:
            import av

            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(gray), format="gray")
            frame.color_range = _AVCOL_RANGE_JPEG
            frame.pts = self.frames
            frame.time_base = 1 / self.fps
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file (idempotent)."""
        if self.codec == "mp4v":
            if self._cv is not None:
                self._cv.release()
                self._cv = None
        elif self._container is not None:
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            finally:
                self._container.close()
                self._container = None

    def __enter__(self) -> "GrayVideoWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify_output(path: str | os.PathLike) -> tuple[int, int, int]:
    """Decode a written video with decord (the default training reader) and return ``(frames, h, w)``.

    Raises:
        RuntimeError: decord cannot open or decode the file (decord's own errors are wrapped).
    """
    import decord

    try:
        reader = decord.VideoReader(str(path))
        n = len(reader)
        first = reader[0].asnumpy()
        last = reader[n - 1].asnumpy()
    except Exception as exc:  # decord raises its own DECORDError
        raise RuntimeError(f"decord cannot decode the output: {exc}") from exc
    if first.shape != last.shape:
        raise RuntimeError(f"decord: frame shapes differ ({first.shape} vs {last.shape})")
    return n, first.shape[0], first.shape[1]
