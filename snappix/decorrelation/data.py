"""Clips for decorrelation pattern learning: grey linear frames, SnapPix windows, in-memory cache.

SnapPix (https://arxiv.org/abs/2504.04535) learns its exposure pattern on clips of videos already
preprocessed to linear grey with short side 112 (``docs/methods/snappix.md`` sections 2 and 7): one 16-frame window per video per epoch at a
random offset (sampling rate 4), a 112 x 112 centre crop and no augmentation; validation windows are
deterministic. This module provides exactly that, plus:

* ``preprocess="snappix"``: apply the SnapPix preprocessing (:func:`snappix.data.preprocessing.preprocess_frame`:
  sRGB -> linear LUT, short side ``short_side``, BGR2GRAY) to raw videos at load time, so raw clips can be
  used without writing preprocessed files first; ``"none"``: the videos are already preprocessed, the
  grey value is channel 0 (SnapPix's loader);
* ``cache=True``: every video is decoded once into memory (uint8, centre-cropped), which makes small
  data sets (the evaluation protocol's five clips: 1.6 MB per 100 frames) train at memory speed;
* :func:`protocol_windows`: every window ``start = 0, stride, 2 * stride, ...`` that fits in the video
  (``start + (T - 1) * rate <= L - 1``); a video shorter than one window contributes its single SnapPix
  validation window ``k * rate`` clamped to ``L - 1`` (``stride = 0``: that window only, for every video,
  which is SnapPix's own validation).

Bad videos: every video is opened (and, with ``cache``, decoded) when the source is built. Failures go
through the tracker the datasets use (:class:`snappix.data.bad_videos.BadVideoTracker`): one warning and
one ``bad_videos.txt`` line each, and the same stopping rule (``--max_bad_fraction``, counted over the
listed videos); a source with no readable video at all always stops.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from snappix.data.bad_videos import BadVideoTracker, TooManyBadVideos
from snappix.data.lists import read_list
from snappix.data.sampling import sampling_rate_for_path, snappix_pretrain_indices
from snappix.data.video import VIDEO_SUFFIXES, VideoDecodeError, find_videos, open_video

__all__ = ["VIDEO_SUFFIXES", "PREPROCESS_MODES", "Window", "list_videos", "GreyClipSource", "train_windows",
           "protocol_windows"]

PREPROCESS_MODES = ("none", "snappix")
Window = tuple[int, np.ndarray]  # (video index, int64 frame indices)


def list_videos(data_path: str | os.PathLike, data_root: str = "", allow_outside_root: bool = False) -> list[str]:
    """Video paths of a data set given as a folder or a list file.

    Args:
        data_path: a folder (every non-hidden file with a suffix in :data:`snappix.data.video.VIDEO_SUFFIXES`, recursively,
            sorted), or a pretraining list (``path start_idx total_frames``, SnapPix's ``path 0 -1``; rows
            with ``total_frames >= 0`` are frame folders).
        data_root: prefix joined to the list's paths (ignored for a folder).
        allow_outside_root: accept list rows that are absolute or lead out of ``data_root``
            (:func:`snappix.data.lists.read_list`).

    Returns:
        Paths as strings, in folder-sorted or list order.

    Raises:
        FileNotFoundError: ``data_path`` does not exist; ``ValueError``: an empty folder or list.
        snappix.data.lists.ListFormatError: a malformed list row (or one outside ``data_root``).
    """
    path = Path(data_path)
    if path.is_dir():
        paths = sorted(str(p) for p in find_videos(path, hidden=False, follow_links=False))
    elif path.is_file():
        paths = [e.path for e in read_list(path, "pretrain", data_root, allow_outside_root=allow_outside_root)]
    else:
        raise FileNotFoundError(f"data path not found: {path}")
    if not paths:
        raise ValueError(f"no videos in {path} (folder suffixes: {', '.join(VIDEO_SUFFIXES)})")
    return paths


def _center_crop(frames: np.ndarray, size: int, path: str) -> np.ndarray:
    h, w = frames.shape[-2:]
    if h < size or w < size:
        raise VideoDecodeError(path, f"frames of {h}x{w} are smaller than the {size}x{size} crop")
    y, x = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))  # torchvision CenterCrop offsets
    return frames[..., y:y + size, x:x + size]


class GreyClipSource:
    """Grey ``uint8`` frames of a list of videos, centre-cropped, optionally cached in memory.

    Args:
        paths: video files (or frame folders).
        input_size: side of the square centre crop in pixels (SnapPix: 112).
        preprocess: ``"none"`` (already preprocessed: take channel 0) or ``"snappix"`` (linear grey,
            short side ``short_side``, computed from the decoded RGB frames).
        short_side: short side of the SnapPix preprocessing (default ``input_size``).
        cache: decode every video once into memory.
        backend: video backend for :func:`snappix.data.video.open_video` (None: its default).
        num_workers: threads decoding videos in parallel when building the cache.
        log_dir: where ``bad_videos.txt`` goes (None: nowhere).
        max_bad_fraction: the tracker's allowed fraction of unreadable videos.

    Attributes:
        paths, lengths: the readable videos and their frame counts; ``bad``: ``(path, reason)`` of the others.

    Raises:
        ValueError: bad ``preprocess``/sizes; TooManyBadVideos: too many unreadable videos (or all).
    """

    def __init__(self, paths: Sequence[str], input_size: int = 112, preprocess: str = "none",
                 short_side: int | None = None, cache: bool = True, backend: str | None = None,
                 num_workers: int = 1, log_dir: str | None = None, max_bad_fraction: float = 0.01) -> None:
        if preprocess not in PREPROCESS_MODES:
            raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")
        if input_size < 1:
            raise ValueError(f"input_size must be >= 1, got {input_size}")
        self.input_size, self.preprocess = input_size, preprocess
        self.short_side = short_side or input_size
        self.cache, self.backend = cache, backend
        loader = self._load_all if cache else self._probe
        with ThreadPoolExecutor(max(1, num_workers)) as pool:
            results = list(pool.map(loader, paths))
        tracker = BadVideoTracker(log_dir, max_bad_fraction, num_rows=len(paths), paths=list(paths))
        self.bad: list[tuple[str, str]] = []
        self.paths: list[str] = []
        self.lengths: list[int] = []
        self._frames: list[np.ndarray] = []
        for row, (path, res) in enumerate(zip(paths, results)):
            tracker.tried(row)
            if isinstance(res, str):
                self.bad.append((path, res))
                tracker.record(path, res, None, row=row)
                continue
            self.paths.append(path)
            if cache:
                self._frames.append(res)
                self.lengths.append(len(res))
            else:
                self.lengths.append(res)
        if not self.paths:
            listed = "; ".join(f"{p}: {r}" for p, r in self.bad[:10])
            raise TooManyBadVideos(f"none of the {len(paths)} videos could be read: {listed}")
        tracker.check(scope="every listed video, read at start-up")

    # ------------------------------------------------------------------ decoding
    def _grey(self, rgb: np.ndarray) -> np.ndarray:
        """``(T, H, W, 3)`` uint8 RGB -> ``(T, h, w)`` uint8 grey (preprocessed or channel 0)."""
        if self.preprocess == "none":
            return rgb[..., 0]
        from snappix.data.preprocessing import preprocess_frame

        return np.stack([preprocess_frame(np.ascontiguousarray(f[..., ::-1]), self.short_side) for f in rgb])

    def _decode(self, path: str, indices: np.ndarray) -> np.ndarray:
        with open_video(path, backend=self.backend) as reader:
            return _center_crop(self._grey(reader.get_frames(indices)), self.input_size, path)

    def _load_all(self, path: str) -> np.ndarray | str:
        try:
            with open_video(path, backend=self.backend) as reader:
                n = reader.info.num_frames
                frames = self._grey(reader.get_frames(np.arange(n)))
            return np.ascontiguousarray(_center_crop(frames, self.input_size, path))
        except (VideoDecodeError, IndexError, ValueError) as exc:
            return str(getattr(exc, "reason", exc))

    def _probe(self, path: str) -> int | str:
        try:
            with open_video(path, backend=self.backend) as reader:
                info = reader.info
            short = min(info.height, info.width) if self.preprocess == "none" else self.short_side
            if short < self.input_size:
                return f"frames of {info.height}x{info.width} are smaller than the {self.input_size} crop"
            return info.num_frames
        except VideoDecodeError as exc:
            return exc.reason

    # ------------------------------------------------------------------ access
    def subset(self, videos: Sequence[int]) -> "GreyClipSource":
        """A source of the listed videos only (by index, in that order), sharing the decoded frames (no copy).

        Raises:
            IndexError: an index outside ``range(len(self))``.
        """
        out = object.__new__(GreyClipSource)
        out.__dict__.update(self.__dict__)
        out.paths = [self.paths[v] for v in videos]
        out.lengths = [self.lengths[v] for v in videos]
        out._frames = [self._frames[v] for v in videos] if self.cache else []
        out.bad = []
        return out

    def __len__(self) -> int:
        return len(self.paths)

    def clip(self, video: int, indices: np.ndarray) -> np.ndarray:
        """``(T, S, S)`` uint8 frames ``indices`` of video ``video`` (0-255, linear grey)."""
        if self.cache:
            return self._frames[video][indices]
        return self._decode(self.paths[video], np.asarray(indices))

    def batch(self, windows: Sequence[Window], device: torch.device | str = "cpu") -> torch.Tensor:
        """Stack windows into a float32 clip batch ``(B, 1, T, S, S)`` in [0, 1] on ``device``."""
        frames = np.stack([self.clip(v, idx) for v, idx in windows])
        return torch.from_numpy(frames).to(device).float().div_(255.0).unsqueeze(1)

    def sampling_rate(self, video: int, sampling_rate: int, ssv2_sampling_rate: int | None = None) -> int:
        """The step for one video (SnapPix's SSV2 override only when ``ssv2_sampling_rate`` is given)."""
        return sampling_rate_for_path(self.paths[video], sampling_rate, ssv2_sampling_rate)


def train_windows(source: GreyClipSource, num_frames: int, sampling_rate: int, num_sample: int,
                  rng: np.random.Generator, ssv2_sampling_rate: int | None = None,
                  multiplicity: Sequence[int] | None = None) -> list[Window]:
    """One epoch of SnapPix training windows: ``num_sample`` random-offset windows per video.

    Offsets follow :func:`snappix.data.sampling.snappix_pretrain_indices` (uniform over the offsets whose
    window fits; offset 0 with a repeated tail frame for short videos). Order: video-major; shuffle later.

    Args:
        multiplicity: optional per-video factor (>= 1): video ``v`` gets ``num_sample * multiplicity[v]``
            windows (e.g. its number of :func:`protocol_windows`, so long videos weigh as in validation).

    Returns:
        ``(video, indices)`` pairs; ``indices`` is an int64 array of ``num_frames`` frame numbers.
    """
    out: list[Window] = []
    for v, length in enumerate(source.lengths):
        rate = source.sampling_rate(v, sampling_rate, ssv2_sampling_rate)
        for _ in range(num_sample * (1 if multiplicity is None else max(1, int(multiplicity[v])))):
            out.append((v, snappix_pretrain_indices(length, num_frames, rate, train=True, rng=rng)))
    return out


def protocol_windows(source: GreyClipSource, num_frames: int, sampling_rate: int, stride: int = 32,
                     ssv2_sampling_rate: int | None = None) -> list[Window]:
    """Deterministic validation windows (module docstring): all fitting starts ``0, stride, ...`` per video.

    Args:
        stride: distance between window starts in frames; 0 = one window per video (SnapPix validation).

    Returns:
        ``(video, indices)`` pairs in video order, starts increasing.
    """
    out: list[Window] = []
    for v, length in enumerate(source.lengths):
        rate = source.sampling_rate(v, sampling_rate, ssv2_sampling_rate)
        span = (num_frames - 1) * rate
        starts = list(range(0, length - span, stride)) if stride > 0 and length - 1 >= span else []
        if not starts:
            out.append((v, snappix_pretrain_indices(length, num_frames, rate, train=False)))
            continue
        out.extend((v, s + np.arange(num_frames, dtype=np.int64) * rate) for s in starts)
    return out
