"""Video decoding behind one small interface, with interchangeable backends.

``open_video(path, backend)`` returns a :class:`VideoReader`:

* ``reader.num_frames`` / ``reader.fps``: cheap, known after opening;
* ``reader.info``: :class:`VideoInfo` ``(num_frames, fps, height, width)``;
* ``reader.get_frames(indices)``: ``np.ndarray`` uint8 ``(T, H, W, C)`` RGB, in the order of
  ``indices`` (repeats allowed);
* ``reader.close()`` (also a context manager).

Finding video files in a folder tree: :func:`find_videos` (suffixes :data:`VIDEO_SUFFIXES`, or the
user's list normalised by :func:`parse_formats`). Sequential OpenCV reading of source videos for
preprocessing is in :mod:`snappix.data.video_capture`; writing in :mod:`snappix.data.video_writer`.

Backends: ``decord`` (default; VideoMAE / SnapPix), ``pyav`` (bundled FFmpeg, exact sequential
decoding), ``frames`` (a folder of jpg/png frames, sorted by name), ``torchcodec`` (when installed
and loadable). Every failure to open or decode raises :class:`VideoDecodeError` carrying the path
and the reason; indices outside ``[0, num_frames)`` raise ``IndexError``.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

BACKENDS = ("decord", "pyav", "frames", "torchcodec")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: suffixes of video files looked for in folders (lower case, dotted): every tool and script uses these
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v")


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded.

    Attributes:
        path: the file or frame folder.
        reason: short human-readable cause (e.g. ``"empty file (0 bytes)"``).
    """

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    """Stream properties: frame count, frames per second, frame height and width in pixels."""

    num_frames: int
    fps: float
    height: int
    width: int


class VideoReader:
    """Base class of the backends; subclasses implement ``_open``, ``_decode`` and ``_close``."""

    backend = "base"

    def __init__(self, path: str, num_threads: int = 1):
        self.path = os.fspath(path)
        self.num_threads = num_threads
        self._size: tuple[int, int] | None = None
        self.num_frames = 0
        self.fps = 0.0
        if os.path.isdir(self.path) and self.backend != "frames":
            raise VideoDecodeError(self.path, "is a directory, not a video file (use backend 'frames')")
        if not os.path.exists(self.path):
            raise VideoDecodeError(self.path, "file not found")
        if os.path.isfile(self.path) and os.path.getsize(self.path) == 0:
            raise VideoDecodeError(self.path, "empty file (0 bytes)")
        try:
            self._open()
        except VideoDecodeError:
            raise
        except Exception as exc:  # backends raise many types; normalise them
            raise VideoDecodeError(self.path, f"cannot open with {self.backend}: {exc}") from exc
        if self.num_frames <= 0:
            self.close()
            raise VideoDecodeError(self.path, f"no video frames ({self.backend})")

    # -- backend hooks -------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    # -- public API ------------------------------------------------------------------------------
    @property
    def info(self) -> VideoInfo:
        """Frame count, fps, height, width. Height and width may need one decoded frame."""
        if self._size is None:
            frame = self.get_frames([0])[0]
            self._size = frame.shape[:2]
        return VideoInfo(self.num_frames, float(self.fps), int(self._size[0]), int(self._size[1]))

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode the frames at ``indices``.

        Args:
            indices: frame indices in ``[0, num_frames)``, any order, repeats allowed.

        Returns:
            uint8 array ``(len(indices), H, W, C)``, RGB (C=3) in the order of ``indices``.

        Raises:
            IndexError: an index outside ``[0, num_frames)``.
            VideoDecodeError: the backend failed (path and reason in the message).
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise IndexError(f"{self.path}: no frame indices requested")
        bad = idx[(idx < 0) | (idx >= self.num_frames)]
        if bad.size:
            raise IndexError(f"{self.path}: frame indices {bad[:5].tolist()} outside [0, {self.num_frames})")
        try:
            frames = self._decode(idx)
        except VideoDecodeError:
            raise
        except Exception as exc:
            raise VideoDecodeError(self.path, f"decoding failed with {self.backend}: {exc}") from exc
        if frames.shape[0] != idx.size:
            raise VideoDecodeError(self.path, f"{self.backend} returned {frames.shape[0]} of {idx.size} frames")
        self._size = frames.shape[1:3]
        return frames

    def close(self) -> None:
        """Release the decoder; safe to call twice."""
        self._close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, num_frames={self.num_frames}, fps={self.fps:.3f})"


class DecordReader(VideoReader):
    """decord ``VideoReader`` (random access by frame index; the VideoMAE/SnapPix default)."""

    backend = "decord"

    def _open(self) -> None:
        import decord

        self._vr = decord.VideoReader(self.path, num_threads=self.num_threads, ctx=decord.cpu(0))
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps())

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        return self._vr.get_batch(indices.tolist()).asnumpy()

    def _close(self) -> None:
        self.__dict__.pop("_vr", None)


class PyAVReader(VideoReader):
    """PyAV (FFmpeg bundled in the wheel): exact, sequential decoding up to the last index needed.

    Frame ``i`` is the ``i``-th frame the decoder outputs, as with decord on constant-frame-rate
    video. Cost grows with the largest requested index (no seeking), which is fine for the short
    clips of action recognition; prefer decord or torchcodec for long videos.
    """

    backend = "pyav"

    def _open(self) -> None:
        import av

        self._container = av.open(self.path)
        if not self._container.streams.video:
            raise VideoDecodeError(self.path, "no video stream")
        stream = self._container.streams.video[0]
        stream.thread_count = max(1, self.num_threads)
        self.fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        self.num_frames = int(stream.frames or 0)
        if self.num_frames <= 0:  # container without a frame count (e.g. some webm/avi): count packets
            self.num_frames = sum(1 for p in self._container.demux(stream) if p.size)
            self._container.seek(0)
        self._size = (stream.codec_context.height, stream.codec_context.width)

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        self._container.seek(0)
        wanted = set(indices.tolist())
        last = int(indices.max())
        got: dict[int, np.ndarray] = {}
        for i, frame in enumerate(self._container.decode(video=0)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
        missing = wanted.difference(got)
        if missing:
            raise VideoDecodeError(self.path, f"stream ended before frame {min(missing)} "
                                              f"(decoded {len(got)} of {len(wanted)} wanted; header says {self.num_frames})")
        return np.stack([got[i] for i in indices.tolist()])

    def _close(self) -> None:
        container = self.__dict__.pop("_container", None)
        if container is not None:
            container.close()


class FrameFolderReader(VideoReader):
    """A folder of frame images (jpg/jpeg/png), frame ``i`` = the ``i``-th file in name order.

    fps is read from an ``fps.txt`` file in the folder when present, else 0.0 (unknown).
    """

    backend = "frames"

    def _open(self) -> None:
        if not os.path.isdir(self.path):
            raise VideoDecodeError(self.path, "not a frame folder")
        self._files = sorted(f for f in glob.glob(os.path.join(glob.escape(self.path), "*"))
                             if f.lower().endswith(FRAME_EXTENSIONS))
        self.num_frames = len(self._files)
        fps_file = os.path.join(self.path, "fps.txt")
        if os.path.isfile(fps_file):
            with open(fps_file) as f:
                self.fps = float(f.read().strip())

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        # Pillow decodes PNG with its own code (no libpng): OpenCV's and torchvision's bundled
        # libpng copies clash once both are loaded in one process, failing on valid files.
        from PIL import Image

        out = []
        for i in indices.tolist():
            try:
                with Image.open(self._files[i]) as img:
                    out.append(np.asarray(img.convert("RGB")))
            except OSError as exc:
                raise VideoDecodeError(self.path, f"cannot read frame image {self._files[i]}: {exc}") from exc
        return np.stack(out)


class TorchCodecReader(VideoReader):
    """torchcodec ``VideoDecoder`` (exact seek mode), the maintained successor of torchvision.io."""

    backend = "torchcodec"

    def _open(self) -> None:
        from torchcodec.decoders import VideoDecoder

        self._dec = VideoDecoder(self.path, seek_mode="exact", num_ffmpeg_threads=self.num_threads)
        meta = self._dec.metadata
        self.num_frames = int(meta.num_frames or 0)
        self.fps = float(meta.average_fps or 0.0)
        self._size = (int(meta.height), int(meta.width))

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        order = np.argsort(indices, kind="stable")  # forward-only access, then restore the order
        batch = self._dec.get_frames_at(indices[order].tolist()).data  # (N, C, H, W) uint8
        frames = np.empty((len(indices), *batch.shape[2:], batch.shape[1]), dtype=np.uint8)
        frames[order] = batch.permute(0, 2, 3, 1).numpy()
        return frames

    def _close(self) -> None:
        self.__dict__.pop("_dec", None)


_READERS = {r.backend: r for r in (DecordReader, PyAVReader, FrameFolderReader, TorchCodecReader)}


def backend_available(backend: str) -> bool:
    """True when ``backend``'s library imports and loads on this machine."""
    if backend == "frames":
        return True
    module = {"decord": "decord", "pyav": "av", "torchcodec": "torchcodec.decoders"}[backend]
    try:
        __import__(module)
    except (ImportError, OSError, RuntimeError):
        return False
    return True


def open_video(path: str | os.PathLike, backend: str | None = None, num_threads: int = 1) -> VideoReader:
    """Open a video file (or a frame folder) for frame-indexed decoding.

    Args:
        path: video file, or a folder of frame images.
        backend: one of ``decord``, ``pyav``, ``frames``, ``torchcodec``; ``None`` picks ``frames``
            for a folder and ``decord`` for a file (``pyav`` if decord is not installed).
        num_threads: decoder threads (1 inside DataLoader workers).

    Raises:
        ValueError: unknown backend name.
        VideoDecodeError: missing, empty, unreadable or frameless input.
    """
    path = os.fspath(path)
    if backend is None:
        if os.path.isdir(path):
            backend = "frames"
        else:
            backend = "decord" if backend_available("decord") else "pyav"
    if backend not in _READERS:
        raise ValueError(f"unknown video backend {backend!r}; valid: {list(BACKENDS)}")
    return _READERS[backend](path, num_threads=num_threads)


# ----------------------------------------------------------------------------------------------
# Finding video files
# ----------------------------------------------------------------------------------------------


def parse_formats(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Normalise ``".mp4,.avi"`` / ``["mp4", ".AVI"]`` to lower-case dotted suffixes ``(".mp4", ".avi")``.

    Blank items are dropped and repeats kept once, in first-seen order.

    Raises:
        ValueError: no suffix given.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        item = item.strip().lower()
        if item:
            item = item if item.startswith(".") else "." + item
            if item not in out:
                out.append(item)
    if not out:
        raise ValueError(f"no input format given in {spec!r}")
    return tuple(out)


def is_part_file(name: str) -> bool:
    """True for the hidden temporaries ``.<stem>.part.<suffix>`` that atomic writers leave while working."""
    return name.startswith(".") and ".part." in name


def find_videos(root: str | os.PathLike, suffixes: str | Sequence[str] = VIDEO_SUFFIXES,
                exclude: str | os.PathLike | None = None, *, hidden: bool = True,
                follow_links: bool = True) -> list[Path]:
    """Every video file below ``root``: names whose suffix is in ``suffixes``, case-insensitively.

    Args:
        root: folder walked recursively (a missing folder gives ``[]``).
        suffixes: ``".mp4,.avi"`` or a sequence, normalised by :func:`parse_formats`.
        exclude: a folder not entered (e.g. an output folder inside the input folder).
        hidden: also return dot-files (the ``.<stem>.part.<suffix>`` temporaries of atomic writers
            are skipped either way).
        follow_links: enter linked folders (a link loop then never ends: keep False for trees that
            may link to themselves).

    Returns:
        ``Path``\ s (``root`` joined with the relative path) in walk order: a folder's files by name,
        then its sub-folders by name, recursively.

    Raises:
        ValueError: no suffix given.
    """
    suffixes = parse_formats(suffixes)
    excluded = Path(exclude).resolve() if exclude is not None else None
    found = []
    for folder, dirs, files in os.walk(root, followlinks=follow_links):
        dirs.sort()
        if excluded is not None:
            dirs[:] = [d for d in dirs if Path(folder, d).resolve() != excluded]
        for name in sorted(files):
            if is_part_file(name) or (not hidden and name.startswith(".")):
                continue
            if os.path.splitext(name)[1].lower() in suffixes:
                found.append(Path(folder, name))
    return found
