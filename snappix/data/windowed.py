"""Long videos as sliding windows (VideoMamba's trimmed LVU protocol, https://arxiv.org/abs/2403.06977;
``docs/methods/videomamba.md``).

:class:`WindowedVideoDataset` turns every row of a ``cls`` / ``reg`` / ``long`` list into the windows of
:func:`snappix.data.sampling.window_seconds` (``trimmed`` seconds every ``time_stride`` seconds; the last
window only when it covers at least half a window; a video no longer than a window is one window). Each
window is an item of its own in every mode; inside a window the clip is sampled as the dataset's
``sampling`` says (``"segment"``: one frame per equal segment of the window), with frame indices
``int(sec * fps)`` from the decoder's fps. Samples carry ``window`` besides ``index`` (the list row), so
the multi-view test keys views by ``(row, window, segment, crop)`` and averages every window of a video.
"""

from __future__ import annotations

import logging

import numpy as np

from . import sampling
from .datasets import VideoClsDataset
from .lists import ListEntry, read_list
from .video import VideoDecodeError, backend_available, open_video

log = logging.getLogger(__name__)


def probe_duration(entry: ListEntry, backend: str | None = None) -> float | None:
    """Duration in seconds (``num_frames / fps``) of the row's video from its decoder; ``None`` when it
    cannot be opened or its fps is unknown (the row is then one window, and a decode error later is
    handled as any bad video)."""
    backend = backend or ("decord" if backend_available("decord") else "pyav")
    try:
        with open_video(entry.path, backend="frames" if not entry.is_video_file else backend) as reader:
            if reader.fps > 0 and reader.num_frames > 0:
                return reader.num_frames / reader.fps
    except (VideoDecodeError, OSError, ValueError) as exc:
        log.warning("%s: duration unknown (%s); taken as one window", entry.path, exc)
    return None


class WindowedVideoDataset(VideoClsDataset):
    """:class:`VideoClsDataset` over sliding windows of long videos.

    Items are ``window x view`` pairs: ``len = (windows of all rows) x test_num_segment x test_num_crop``.
    Each sample is the :class:`VideoClsDataset` sample of its row (``video``, ``label`` or ``target``,
    ``index``, in test mode ``segment`` / ``crop``) plus ``window`` (int, 0-based within the row).

    Args:
        trimmed: window length in seconds (VideoMamba: 60).
        time_stride: seconds between window starts (VideoMamba: 16).
        list_format: ``"cls"`` / ``"reg"`` (durations read from the decoder when the dataset is built) or
            ``"long"`` (``path label duration_s``: the list's durations, the reference's LVU format).
        other arguments: as :class:`VideoClsDataset`.

    Attributes:
        row_windows: per list row, its windows in seconds ``[(start_s, end_s), ...]``.
        windows_per_row: per list row, its number of windows (for the multi-view merge).

    Raises:
        ValueError: ``trimmed`` / ``time_stride`` not > 0, and as :class:`VideoClsDataset`.
        VideoDecodeError (in loading, handled as a bad video): the decoder gives no fps.
    """

    def __init__(self, data_path: str, data_root: str = "", trimmed: float = 60.0, time_stride: float = 16.0,
                 list_format: str = "cls", **kwargs):
        if not (trimmed > 0 and time_stride > 0):
            raise ValueError(f"trimmed and time_stride must be > 0, got {trimmed}, {time_stride}")
        if list_format == "long":
            kwargs["entries"] = kwargs.get("entries") or read_list(
                data_path, "long", data_root, kwargs.get("allow_outside_root", False))
            list_format = "cls"
        super().__init__(data_path, data_root, list_format=list_format, **kwargs)
        self.trimmed, self.time_stride = float(trimmed), float(time_stride)
        self.row_windows: list[list[tuple[float, float]]] = []
        for e in self.entries:
            duration = e.duration_s if e.duration_s is not None else probe_duration(e, self.video_backend)
            self.row_windows.append(sampling.window_seconds(duration, self.trimmed, self.time_stride)
                                    if duration else [(0.0, float("inf"))])
        self.items = [(row, w) for row, ws in enumerate(self.row_windows) for w in range(len(ws))]
        self._row_of = {id(e): row for row, e in enumerate(self.entries)}

    @property
    def windows_per_row(self) -> list[int]:
        return [len(ws) for ws in self.row_windows]

    def __len__(self) -> int:
        return len(self.items) * self.num_views

    def describe_item(self, item: int) -> str:
        row, window = self.items[int(item) // max(self.num_views, 1)]
        entry = self.entries[row]
        return f"{entry.path} ({self.data_path}:{entry.line_no}, window {window})"

    def _window_indices(self, entry: ListEntry, window: int, segment: int, np_rng):
        """``indices_fn(n, fps)`` for ``_read``: the clip inside the row's window ``window`` (a substitute
        row with fewer windows uses its last one)."""
        windows = self.row_windows[self._row_of[id(entry)]]
        window_s = windows[min(window, len(windows) - 1)]

        def indices_fn(n: int, fps: float) -> list[np.ndarray]:
            if window_s[1] == float("inf"):  # duration unknown when built: the whole video
                a, b = 0, n
            elif not fps > 0:
                raise VideoDecodeError(entry.path, "the decoder gives no fps: trimmed windows need it")
            else:
                a, b = sampling.window_frames(window_s, fps, n)
            return [self._indices(b - a, segment, np_rng) + a]

        indices_fn.wants_fps = True  # type: ignore[attr-defined]
        return indices_fn

    def __getitem__(self, item: int) -> dict:
        k, view = divmod(int(item), self.num_views)
        row, window = self.items[k]
        segment, crop = divmod(view, self.test_num_crop)
        np_rng, py_rng, torch_rng = self._generators(item)

        def load(entry: ListEntry) -> dict:
            fn = self._window_indices(entry, window, segment, np_rng)
            return {"video": self._clip(entry, fn, crop, py_rng, torch_rng), **self._target(entry)}

        sample = self._load_with_fallback(row, load)
        sample["window"] = window
        if self.mode == "test":
            sample.update(segment=segment, crop=crop)
        return sample
