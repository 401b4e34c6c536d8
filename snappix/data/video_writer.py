"""Writing videos: grey frames losslessly (:class:`GrayVideoWriter`), RGB clips (:func:`write_video`).

:class:`GrayVideoWriter` writes the linear-grey videos of SnapPix's preprocessing
(``preprocess_data.py``, :mod:`snappix.tools.preprocess`; ``docs/methods/snappix.md`` §7) and of the
temporal split; :func:`verify_output` decodes a written file back with decord, the training reader.
:func:`write_video` encodes the RGB clips of the embedded synthetic data set
(:mod:`snappix.data.synthetic`).

Codec
-----
Default ``libx264``: H.264 **lossless** (``qp=0``), 4:0:0 grey (``pix_fmt=gray``), flagged **full range**
(``color_range=JPEG``), written through PyAV. Decoding it gives back exactly the grey values written
(those of the preprocessing: sRGB LUT, resize, grey), with decord (``VideoReader(...)[i][..., 0]``, the
training reader), with PyAV (``to_ndarray(format="rgb24")[..., 0]`` or ``format="gray"``) and with
``cv2.VideoCapture``.
Measured on five test clips (demo.mp4, demo_spatiotemporal_det.mp4,
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
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

__all__ = ["CODECS", "GrayVideoWriter", "verify_output", "write_video"]

#: codecs of :class:`GrayVideoWriter`
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
        """Append one ``(height, width)`` uint8 frame (0-255).

        Raises:
            RuntimeError: the frame is not uint8 of the writer's ``(height, width)``.
        """
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


def write_video(path: str, frames: np.ndarray, fps: int = 25) -> None:
    """Encode uint8 RGB frames ``(T, H, W, 3)`` as H.264 (crf 18, yuv420p, one encoder thread) with PyAV.

    Raises:
        ValueError: frames not ``(T, H, W, 3)`` uint8 with even H and W (yuv420p needs them).
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"{path}: H.264 yuv420p needs even sizes, got {frames.shape[1]}x{frames.shape[2]}")
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}  # 1 thread: same bytes everywhere
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
