"""Frame sampling: which frame indices of a video make one clip.

Every sampler is a pure function of ``(video_len, parameters, rng)`` returning an ``np.int64``
array of frame indices in ``[0, video_len)`` (0-based). ``rng`` is a ``np.random.Generator``;
deterministic modes ignore it. Conventions follow VideoMAE / VideoMAEv2 / SnapPix / VideoMamba
(see ``docs/methods/snappix.md`` §7 and ``docs/methods/videomamba.md``):

* :func:`dense_clip_indices` -- ``num_frames`` frames ``sampling_rate`` apart (VideoMAE Kinetics);
* :func:`segment_indices` -- one frame per equal segment (TSN; SSV2, VideoMamba ``Kinetics_sparse``);
* :func:`multiview_dense_indices` -- ``test_num_segment`` evenly spaced dense clips (test views);
* :func:`snappix_pretrain_indices` -- HybridVideoMAE pretraining / decorrelation clips;
* :func:`sampling_rate_for_path` -- SnapPix's SSV2 sampling-rate override, made explicit;
* :func:`window_seconds` / :func:`window_frames` / :func:`trimmed_windows` -- sliding windows
  ``[s, s + trimmed]`` seconds over long videos (LVU) and their frame ranges.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

SSV2_PATH_MARKERS = ("ssv2_processed", "SomethingV2")


def _check(video_len: int, num_frames: int, sampling_rate: int = 1) -> None:
    if video_len < 1:
        raise ValueError(f"video_len must be >= 1, got {video_len}")
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(f"num_frames and sampling_rate must be >= 1, got {num_frames}, {sampling_rate}")


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


def dense_clip_indices(video_len: int, num_frames: int = 16, sampling_rate: int = 4, train: bool = True,
                       rng: np.random.Generator | None = None, style: str = "videomae") -> np.ndarray:
    """Dense clip: ``num_frames`` frames spanning ``num_frames * sampling_rate`` frames.

    The window ``[start, end)`` with ``end - start = num_frames * sampling_rate`` is random in
    training (``end ~ U[span, video_len)``) and centred in validation
    (``end = (span + video_len) // 2``), as in VideoMAE / SnapPix ``VideoClsDataset.load_video``.

    Args:
        style: ``"videomae"`` reproduces VideoMAE/SnapPix exactly: ``linspace(start, end, num_frames)``
            floored and clipped to ``end - 1`` (so the spacing is ``span / (num_frames - 1)``);
            ``"stride"`` takes ``start + k * sampling_rate``.

    Short videos (``video_len <= span``): frames ``0, r, 2r, ...`` below ``video_len`` (``videomae``:
    ``linspace(0, video_len, video_len // r)``), padded with the last frame ``video_len - 1``.

    Returns:
        int64 ``(num_frames,)`` indices in ``[0, video_len)``.
    """
    _check(video_len, num_frames, sampling_rate)
    if style not in ("videomae", "stride"):
        raise ValueError(f"style must be 'videomae' or 'stride', got {style!r}")
    span = num_frames * sampling_rate
    if video_len <= span:
        if style == "videomae":
            idx = np.linspace(0, video_len, num=video_len // sampling_rate)
        else:
            idx = np.arange(0, video_len, sampling_rate)
        idx = idx[:num_frames]
        idx = np.concatenate([idx, np.full(num_frames - len(idx), video_len - 1)])
        return np.clip(idx, 0, video_len - 1).astype(np.int64)
    end = int(_rng(rng).integers(span, video_len)) if train else (span + video_len) // 2
    start = end - span
    if style == "videomae":
        idx = np.clip(np.linspace(start, end, num=num_frames), start, end - 1)
    else:
        idx = start + sampling_rate * np.arange(num_frames)
    return idx.astype(np.int64)


def segment_indices(video_len: int, num_frames: int = 16, train: bool = True,
                    rng: np.random.Generator | None = None, view: int = 0, num_views: int = 1) -> np.ndarray:
    """Segment (TSN) sampling: one frame from each of ``num_frames`` equal segments of the video.

    With ``seg = (video_len - 1) / num_frames``: training draws frame ``i`` uniformly from
    ``[round(seg*i), round(seg*(i+1))]``; test view ``k`` of ``S = num_views`` takes
    ``round(seg*i) + int(seg / (S + 1) * (k + 1))`` (``S = 1`` gives the segment middles), as in
    VideoMAE's SSV2 dataset and VideoMamba's ``Kinetics_sparse``.

    Returns:
        int64 ``(num_frames,)`` indices in ``[0, video_len)``.
    """
    _check(video_len, num_frames)
    if not 0 <= view < num_views:
        raise ValueError(f"view must be in [0, {num_views}), got {view}")
    seg = (video_len - 1) / num_frames
    starts = np.round(seg * np.arange(num_frames)).astype(np.int64)
    if train:
        ends = np.round(seg * np.arange(1, num_frames + 1)).astype(np.int64)
        idx = _rng(rng).integers(starts, ends + 1)
    else:
        idx = starts + int(seg / (num_views + 1) * (view + 1))
    return np.clip(idx, 0, video_len - 1).astype(np.int64)


def multiview_dense_indices(video_len: int, num_frames: int = 16, sampling_rate: int = 4,
                            test_num_segment: int = 5) -> list[np.ndarray]:
    """Temporal test views of dense sampling (VideoMAE ``mode='test'``).

    The video is read at stride ``sampling_rate`` (frames ``0, r, 2r, ...``, padded with the last
    one up to ``num_frames``); view ``k`` is the ``num_frames``-long slice starting at
    ``int(k * (n_strided - num_frames) / (test_num_segment - 1))`` so the views are evenly spaced
    from the first to the last possible window (all identical for short videos).

    Returns:
        ``test_num_segment`` int64 arrays ``(num_frames,)``.
    """
    _check(video_len, num_frames, sampling_rate)
    if test_num_segment < 1:
        raise ValueError(f"test_num_segment must be >= 1, got {test_num_segment}")
    strided = np.arange(0, video_len, sampling_rate)
    if len(strided) < num_frames:
        strided = np.concatenate([strided, np.full(num_frames - len(strided), video_len - 1)])
    step = max(len(strided) - num_frames, 0) / max(test_num_segment - 1, 1)
    return [strided[int(k * step): int(k * step) + num_frames].astype(np.int64) for k in range(test_num_segment)]


def snappix_pretrain_indices(video_len: int, num_frames: int = 16, sampling_rate: int = 4, train: bool = True,
                             rng: np.random.Generator | None = None) -> np.ndarray:
    """SnapPix / VideoMAEv2 ``HybridVideoMAE`` clip (pretraining, decorrelation, reconstruction).

    Training: ``avail = video_len - num_frames * sampling_rate + 1``; the offset is uniform in
    ``[0, avail)`` when ``avail > 0``, else 0. Frames are ``offset + k * sampling_rate``, except that
    the position stops advancing once ``offset + sampling_rate >= video_len``, so short videos
    repeat their tail frame. Validation (``train=False``): ``k * sampling_rate`` clamped to
    ``video_len - 1``.

    Returns:
        int64 ``(num_frames,)`` indices in ``[0, video_len)``.
    """
    _check(video_len, num_frames, sampling_rate)
    if not train:
        return np.minimum(np.arange(num_frames) * sampling_rate, video_len - 1).astype(np.int64)
    avail = video_len - num_frames * sampling_rate + 1
    offset = int(_rng(rng).integers(avail)) if avail > 0 else 0
    ids = []
    for _ in range(num_frames):
        ids.append(offset)
        if offset + sampling_rate < video_len:
            offset += sampling_rate
    return np.asarray(ids, dtype=np.int64)


def sampling_rate_for_path(path: str, sampling_rate: int, ssv2_sampling_rate: int | None = None,
                           markers: Sequence[str] = SSV2_PATH_MARKERS) -> int:
    """SnapPix's SSV2 override, as an explicit option.

    SnapPix's ``HybridVideoMAE`` silently uses step 2 for paths containing ``ssv2_processed`` or
    ``SomethingV2`` (12-fps SSV2) and ``sampling_rate`` otherwise. Here the override only applies
    when ``ssv2_sampling_rate`` is given.
    """
    if ssv2_sampling_rate is not None and any(m in path for m in markers):
        return ssv2_sampling_rate
    return sampling_rate


def window_seconds(duration_s: float, trimmed: float = 60.0, time_stride: float = 16.0) -> list[tuple[float, float]]:
    """Sliding windows over a long video in seconds (VideoMamba LVU ``trimmed`` / ``time_stride``,
    https://arxiv.org/abs/2403.06977; ``docs/methods/videomamba.md``).

    Windows are ``[s, min(s + trimmed, duration_s)]`` for ``s = 0, time_stride, ...`` below ``duration_s``;
    a last window shorter than ``trimmed / 2`` is dropped, and a video no longer than ``trimmed`` is the
    single window ``[0, duration_s]``.

    Returns:
        ``[(start_s, end_s), ...]`` (floats), at least one.

    Raises:
        ValueError: ``duration_s``, ``trimmed`` or ``time_stride`` not > 0.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if not (trimmed > 0 and time_stride > 0):
        raise ValueError(f"trimmed and time_stride must be > 0, got {trimmed}, {time_stride}")
    if duration_s <= trimmed:
        return [(0.0, float(duration_s))]
    out = []
    for k in range(math.ceil(duration_s / time_stride)):
        s = k * time_stride
        e = min(s + trimmed, duration_s)
        if e - s >= trimmed / 2:
            out.append((float(s), float(e)))
    return out


def window_frames(window_s: tuple[float, float], fps: float, video_len: int) -> tuple[int, int]:
    """Seconds to a half-open, non-empty frame range: ``int(sec * fps)`` (as the reference, with the
    decoder's fps), clipped to ``[0, video_len)``.

    Raises:
        ValueError: ``fps`` not > 0 or ``video_len < 1``.
    """
    if not fps > 0 or video_len < 1:
        raise ValueError(f"need fps > 0 and video_len >= 1, got {fps}, {video_len}")
    a = min(int(window_s[0] * fps), video_len - 1)
    b = min(int(window_s[1] * fps), video_len)
    return a, max(b, a + 1)


def trimmed_windows(duration_s: float, fps: float, video_len: int, trimmed: float = 60.0,
                    time_stride: float = 16.0) -> list[tuple[int, int]]:
    """:func:`window_seconds` converted to frame ranges with :func:`window_frames`; a video no longer
    than ``trimmed`` is the whole video ``(0, video_len)``.

    Returns:
        ``[(start_frame, end_frame), ...]`` half-open frame ranges, each non-empty.
    """
    if duration_s <= 0 or fps <= 0 or video_len < 1:
        raise ValueError(f"need duration_s > 0, fps > 0, video_len >= 1; got {duration_s}, {fps}, {video_len}")
    if duration_s <= trimmed:
        window_seconds(duration_s, trimmed, time_stride)  # checks trimmed / time_stride
        return [(0, video_len)]
    return [window_frames(w, fps, video_len) for w in window_seconds(duration_s, trimmed, time_stride)]


def clip_in_window(window: tuple[int, int], indices: np.ndarray) -> np.ndarray:
    """Shift indices sampled for a ``window[1] - window[0]``-frame video into that window."""
    return (np.asarray(indices, dtype=np.int64) + window[0]).astype(np.int64)
