"""Inhibition of return (IOR) for G-Eymol: recently fixated places lose their pull.

G-Eymol (Zanca, Melacci, Gori, IEEE TPAMI 2019, https://ieeexplore.ieee.org/document/8730418) keeps a map
``IOR`` in [0, 1] of the working frame's size; the masses are multiplied by ``1 - IOR``. Every
``int(fps / saccades_per_second)`` frames (8 at 25 fps and 3 saccades per second) the map decays and
gains a blob at the gaze (:func:`update_ior`):

    IOR <- min(decay * IOR + blob(gaze), 1)

where the blob is a filled disc of radius ``radius`` (35 px) blurred by a 51 x 51 Gaussian (sigma from
the size, 8 px) and scaled to a peak of 1, its centre kept ``radius`` pixels inside the frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["clamp_inside", "ior_blob", "update_ior", "ior_period"]


def clamp_inside(row: float, col: float, height: int, width: int, margin: int) -> tuple[int, int]:
    """Truncate a gaze position to integer pixels and keep it ``margin`` pixels inside the frame.

    A NaN coordinate becomes 0 first (then the margin). Returns ``(row, col)`` with
    ``margin <= row <= height - margin - 1`` (likewise for ``col``) when the frame is large enough;
    on a frame smaller than ``2 * margin + 1`` the upper bound wins, as in G-Eymol's code.
    """
    def one(x: float, size: int) -> int:
        x = 0 if math.isnan(x) else int(x)
        if x - margin < 0:
            return margin
        if x + margin >= size:
            return size - margin - 1
        return x
    return one(row, height), one(col, width)


def ior_blob(height: int, width: int, row: int, col: int, radius: int = 35, blur: int = 51) -> np.ndarray:
    """float64 ``(height, width)`` blob in [0, 1], peak 1 (all zeros if the disc misses the frame).

    A disc of ``radius`` pixels centred on ``(row, col)`` blurred by a ``blur x blur`` Gaussian
    (``blur`` odd; sigma chosen by OpenCV from the size).
    """
    disc = np.zeros((height, width), np.float64)
    cv2.circle(disc, (int(col), int(row)), int(radius), (1.0,), -1)
    disc = cv2.GaussianBlur(disc, (blur, blur), 0)
    top = disc.max()
    return disc / top if top > 0 else disc


def update_ior(ior: np.ndarray, row: float, col: float, radius: int = 35, decay: float = 0.9) -> np.ndarray:
    """New IOR map after a saccade to ``(row, col)``: ``min(decay * ior + blob, 1)``.

    Args:
        ior: float64 ``(h, w)`` in [0, 1] (not modified).
        row, col: gaze position in pixels; kept ``radius`` pixels inside the frame by :func:`clamp_inside`.

    Returns:
        float64 ``(h, w)`` in [0, 1].
    """
    h, w = ior.shape
    r, c = clamp_inside(row, col, h, w, radius)
    return np.minimum(decay * ior + ior_blob(h, w, r, c, radius), 1.0)


def ior_period(fps: float, saccades_per_second: float = 3.0) -> int:
    """Frames between IOR updates: ``int(fps / saccades_per_second)``, at least 1 (8 at 25 fps).

    Raises:
        ValueError: ``fps`` or ``saccades_per_second`` is not positive.
    """
    if not fps > 0 or not saccades_per_second > 0:
        raise ValueError(f"fps and saccades_per_second must be positive, got {fps}, {saccades_per_second}")
    return max(1, int(fps / saccades_per_second))
