"""Dispersion-based fixation detection on a gaze path, and fixations as ``scan_idx_7`` rows.

The gaze path (one position per frame) is cut into runs: a run starts at an *anchor* sample ``s`` and
holds the following samples while each is within ``max_dist`` pixels (Euclidean) of the anchor; the
first sample farther away ends it and becomes the next anchor. A run ``[s, e]`` is a fixation when its
duration ``(e - s) / fps`` (first to last sample, as in the detector shipped with G-Eymol) is at least
``min_dur`` milliseconds: with the defaults (25 px, 50 ms) at 25 fps, 3 samples or more.

Two behaviours of the detector shipped with G-Eymol are deliberately not copied: it starts a fixation
at the *second* sample of the first close pair, and it keeps the run that reaches the end of the path
whatever its duration. Here a fixation starts at its anchor and every run meets ``min_dur``.

A fixation becomes ``[cell, start_frame, end_frame]`` (:func:`fixation_rows`): ``cell = gr * grid + gc``
for the grid cell holding the mean position of the run's samples, frames 0-based and inclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Fixation", "detect_fixations", "grid_cell", "fixation_rows"]


@dataclass(frozen=True)
class Fixation:
    """One fixation: frames ``start..end`` (0-based, inclusive) and the mean gaze ``(row, col)`` in pixels."""

    start: int
    end: int
    row: float
    col: float


def detect_fixations(gaze: np.ndarray, fps: float = 25.0, max_dist: float = 25.0, min_dur: float = 50.0
                     ) -> list[Fixation]:
    """Fixations of a gaze path (see the module docstring for the exact rule).

    Args:
        gaze: float ``(T, 2)`` positions (row, col) in pixels, one per frame.
        fps: frames per second (sample ``i`` is at ``i / fps`` seconds).
        max_dist: largest distance from the anchor, pixels (25).
        min_dur: shortest fixation, milliseconds from its first to its last sample (50).

    Returns:
        the fixations in time order (they never overlap).

    Raises:
        ValueError: ``gaze`` is not ``(T, 2)``, holds a non-finite value, or ``fps`` / ``max_dist`` is not
            positive or ``min_dur`` is negative.
    """
    gaze = np.asarray(gaze, np.float64)
    if gaze.ndim != 2 or gaze.shape[1] != 2:
        raise ValueError(f"gaze must be (T, 2), got {gaze.shape}")
    if not np.isfinite(gaze).all():
        raise ValueError("gaze holds a non-finite value")
    if not (fps > 0 and max_dist > 0 and min_dur >= 0):
        raise ValueError(f"need fps > 0, max_dist > 0, min_dur >= 0; got {fps}, {max_dist}, {min_dur}")
    out, n, s = [], len(gaze), 0
    while s < n:
        e = s
        while e + 1 < n and np.hypot(*(gaze[e + 1] - gaze[s])) <= max_dist:
            e += 1
        if (e - s) * 1000.0 / fps >= min_dur - 1e-9:
            mean = gaze[s:e + 1].mean(axis=0)
            out.append(Fixation(s, e, float(mean[0]), float(mean[1])))
        s = e + 1
    return out


def grid_cell(row: float, col: float, height: int, width: int, grid: int = 7) -> int:
    """Row-major index ``gr * grid + gc`` of the ``grid x grid`` cell holding pixel position ``(row, col)``.

    ``gr = floor(grid * row / height)`` clipped to ``[0, grid - 1]`` (likewise ``gc``), so a position on
    the last row or column (or slightly outside) falls in the border cell.
    """
    gr = min(max(int(np.floor(grid * row / height)), 0), grid - 1)
    gc = min(max(int(np.floor(grid * col / width)), 0), grid - 1)
    return gr * grid + gc


def fixation_rows(fixations: list[Fixation], height: int, width: int, grid: int = 7) -> np.ndarray:
    """``scan_idx`` rows of fixations on a ``height x width`` frame.

    Returns:
        int64 ``(N, 3)``: ``[cell, start_frame, end_frame]`` per fixation, in time order; ``(0, 3)`` for none.
    """
    rows = [[grid_cell(f.row, f.col, height, width, grid), f.start, f.end] for f in fixations]
    return np.asarray(rows, np.int64).reshape(-1, 3)
