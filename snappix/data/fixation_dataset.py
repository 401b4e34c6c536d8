"""The fixation-clip dataset of Saccade-VSSL pretraining (Lai et al., IEEE TCSVT 2023,
https://doi.org/10.1109/TCSVT.2023.3301698): one item per list row, ``2 * focus_num`` clips in training (clips A and
B of each fixation) or ``focus_num`` fixation-start clips for the prototypes' feature pass. The rules are in
:mod:`snappix.data.fixation_clips`; reading the scanpath files is the caller's job (``snappix.scanpaths``, from
the method plug), so this module takes the rows already read.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from .datasets import _VideoListDataset
from .fixation_clips import (FixationAugment, clip_frames, fixation_starts, focus_frame, pad_fixations,
                             random_fixations, select_fixations)
from .lists import ListEntry

log = logging.getLogger(__name__)

__all__ = ["FixationClipDataset"]


class FixationClipDataset(_VideoListDataset):
    """Saccade-VSSL's clips over a list of videos (``pretrain`` rows ``path start_idx total_frames`` or ``cls`` rows
    ``path label``), with one scanpath per row.

    Modes:
        * ``train``: per video ``2 * focus_num`` clips ``[A_0 .. A_{k-1}, B_0 .. B_{k-1}]`` (k = ``focus_num``),
          each with its own augmentation draw (:class:`FixationAugment`, training) and the focus map of its
          fixation's cell following that clip's crop and flip.
        * ``cluster``: per video ``focus_num`` clips at ``min(start, n - span)`` of each fixation, centre crop, no
          colour change: the reference's feature pass before k-means (its test-time colour jitter is not copied).
          Its random parts (padding spans, random fixations) are those of epoch 0 unless :meth:`set_epoch` is
          called, so every pass sees the same clips.

    Each item: ``video`` float32 ``(V, C, T, S, S)`` in [0, 1] (not normalised), ``focus`` float32
    ``(V, 1, S, S)`` in [0, 1], ``instance`` int64 ``(V,)`` = ``row * focus_num + fixation`` (the row that loaded,
    after a bad-video substitution), ``fixations`` int64 ``(focus_num, 3)`` (the rows used, after padding), plus
    ``index`` / ``requested`` / ``substituted`` (:class:`~snappix.data.datasets.VideoClsDataset`'s rules for bad
    videos). ``V = 2 * focus_num`` (train) or ``focus_num`` (cluster); default collate gives ``(B, V, ...)``.

    Args:
        data_path, data_root: the list and the root its paths are relative to.
        scanpaths: one int ``(N_i, 3)`` array ``[cell, start_frame, end_frame]`` per list row (frames 0-based, relative
            to the row's first frame), or ``None``: every video gets :func:`random_fixations` (HMDB51 in the
            reference, which has no scanpaths).
        focus_num, deduplicate, grid, margin_h: :mod:`snappix.data.fixation_clips` (``--focus_num 3 --deduplicate
            --grid_num 7 --margin_h 12`` in the published recipe).
        num_frames, sampling_rate: frames per clip and their stride (16 and 1 in the reference).
        input_size: output side ``S`` (112).
        mode: ``train`` or ``cluster``.
        seed: draws the padding cells (once per dataset, as the reference's ``random.sample``).
        gray: ``"first"`` (snappix's grey videos, ``C = 1``) or ``None`` (RGB, ``C = 3``).
        bottom_area, center_fraction, flip: :class:`FixationAugment` (``flip``: the random horizontal flip of
            training clips, on by default as in the reference).
        list_format: ``pretrain`` or ``cls``.
        **kwargs: :class:`~snappix.data.datasets._VideoListDataset` (``video_backend``, ``max_bad_fraction``,
            ``log_dir``, ``cache_videos``, ``allow_outside_root``, ``entries``, ...).

    Raises:
        ValueError: an unknown mode or list format, ``scanpaths`` not one per row, a bad ``focus_num``.
        snappix.data.lists.ListFormatError: a malformed list row. FileNotFoundError: too many listed videos missing.
    """

    def __init__(self, data_path: str, data_root: str = "", scanpaths: Sequence[np.ndarray] | None = None,
                 focus_num: int = 3, deduplicate: bool = False, grid: int = 7, margin_h: int = 0,
                 num_frames: int = 16, sampling_rate: int = 1, input_size: int = 112, mode: str = "train",
                 seed: int = 0, gray: str | None = "first", bottom_area: float = 0.175,
                 center_fraction: float = 196 / 256, list_format: str = "pretrain", flip: bool = True, **kwargs):
        if mode not in ("train", "cluster"):
            raise ValueError(f"mode must be 'train' or 'cluster', got {mode!r}")
        if list_format not in ("pretrain", "cls"):
            raise ValueError(f"list_format must be 'pretrain' or 'cls', got {list_format!r}")
        if not 1 <= focus_num <= grid * grid:
            raise ValueError(f"focus_num must be in [1, {grid * grid}], got {focus_num}")
        self.list_format = list_format
        super().__init__(data_path, data_root, **kwargs)
        if scanpaths is not None and len(scanpaths) != len(self.entries):
            raise ValueError(f"{data_path}: {len(self.entries)} rows but {len(scanpaths)} scanpaths")
        self.scanpaths = None if scanpaths is None else [np.asarray(s, np.int64).reshape(-1, 3) for s in scanpaths]
        self.row_of = {entry: i for i, entry in enumerate(self.entries)}
        self.focus_num, self.deduplicate, self.grid, self.margin_h = focus_num, deduplicate, grid, margin_h
        self.num_frames, self.sampling_rate, self.mode, self.gray = num_frames, sampling_rate, mode, gray
        self.span = (num_frames - 1) * sampling_rate + 1
        self.pad_cells = [int(c) for c in np.random.default_rng([seed, 1867]).choice(grid * grid, focus_num,
                                                                                    replace=False)]
        self.augment = FixationAugment(input_size, train=mode == "train", bottom_area=bottom_area,
                                       center_fraction=center_fraction, gray=gray, flip=flip)

    @property
    def n_instances(self) -> int:
        """Instances of the memory bank: ``len(list) * focus_num``."""
        return len(self.entries) * self.focus_num

    @property
    def clips_per_video(self) -> int:
        """``2 * focus_num`` (train) or ``focus_num`` (cluster)."""
        return self.focus_num * (2 if self.mode == "train" else 1)

    def fixations(self, row: int, video_len: int, rng: np.random.Generator) -> np.ndarray:
        """The ``(focus_num, 3)`` fixations of list row ``row`` for a video of ``video_len`` frames."""
        if self.scanpaths is None:
            return random_fixations(self.focus_num, self.grid, video_len, self.span, rng)
        chosen = select_fixations(self.scanpaths[row], self.focus_num, self.deduplicate)
        return pad_fixations(chosen, self.focus_num, video_len, self.span, self.pad_cells, rng)

    def clip_starts(self, fixations: np.ndarray, video_len: int) -> np.ndarray:
        """First frames of the item's clips: ``[A..., B...]`` (train) or ``min(start, n - span)`` (cluster)."""
        if self.mode == "train":
            return np.concatenate(fixation_starts(fixations, video_len, self.span))
        return np.maximum(0, np.minimum(fixations[:, 1], video_len - self.span))

    def __getitem__(self, index: int) -> dict:
        np_rng, py_rng, _ = self._generators(index)  # a cluster-mode dataset is never set_epoch'ed: epoch 0

        def load(entry: ListEntry) -> dict:
            plan: dict = {}

            def indices_fn(n: int) -> list[np.ndarray]:
                fix = self.fixations(self.row_of[entry], n, np_rng)
                idx = np.stack([clip_frames(s, self.num_frames, self.sampling_rate, n)
                                for s in self.clip_starts(fix, n)])
                union, inverse = np.unique(idx, return_inverse=True)  # each frame decoded once
                plan.update(fix=fix, inverse=inverse.reshape(idx.shape))
                return [union]

            frames = self._read(entry, indices_fn)[0]
            cells = np.concatenate([plan["fix"][:, 0]] * (self.clips_per_video // self.focus_num))
            videos, maps = [], []
            for cell, pos in zip(cells.tolist(), plan["inverse"]):
                clip = frames[pos]
                focus = focus_frame(cell, clip.shape[1], clip.shape[2], self.grid, self.margin_h)
                v, m = self.augment(clip, focus, py_rng)
                videos.append(v)
                maps.append(m)
            row = self.row_of[entry]
            fixation = np.arange(self.clips_per_video) % self.focus_num
            return {"video": torch.stack(videos), "focus": torch.stack(maps),
                    "instance": torch.from_numpy(row * self.focus_num + fixation).long(),
                    "fixations": torch.from_numpy(plan["fix"])}

        return self._load_with_fallback(index, load)
