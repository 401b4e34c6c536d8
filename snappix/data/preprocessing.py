"""SnapPix per-frame preprocessing (DAC'25; docs/methods/snappix.md §7): sRGB -> linear LUT, short-side resize, grey.

Pure functions on decoded frames, used by ``preprocess_data.py`` (:mod:`snappix.tools.preprocess`) and by
the decorrelation protocol, which preprocesses the real clips in memory.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["output_size", "preprocess_frame", "srgb_to_linear_lut"]



def srgb_to_linear_lut() -> np.ndarray:
    """The SnapPix inverse-gamma table: sRGB code value -> linear code value (SnapPix, DAC'25, §7.1).

    For ``v = i / 255`` (``i = 0..255``): ``lin = v / 12.92`` if ``v <= 0.04045`` else
    ``((v + 0.055) / 1.055) ** 2.4`` (the IEC 61966-2-1 sRGB decoding curve); the entry is
    ``uint8(clip(lin * 255, 0, 255))`` with **truncation** towards zero, not rounding, as in SnapPix.

    Returns:
        np.ndarray, shape ``(256,)``, dtype ``uint8``, monotone non-decreasing, ``LUT[0] == 0``,
        ``LUT[255] == 255``. Computed in float64.
    """
    v = np.arange(256, dtype=np.float64) / 255.0
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return np.clip(lin * 255.0, 0.0, 255.0).astype(np.uint8)


_LUT = srgb_to_linear_lut()


def output_size(height: int, width: int, short_side: int = 112) -> tuple[int, int]:
    """Frame size after the SnapPix short-side resize.

    ``scale = short_side / min(height, width)``; the long side becomes ``int(long * scale)``
    (truncation, as in SnapPix) and the short side is exactly ``short_side``. SnapPix computes the short
    side as ``int(short * scale)`` too, which floating point rounds down to ``short_side - 1`` for some
    sizes (for 112: heights 142, 153, 157, ...; none of the usual 240/256/360/480/720/1080); we keep it
    at ``short_side``. Upsampling happens when ``min(height, width) < short_side``.

    Args:
        height, width: source frame size in pixels, ``>= 1``.
        short_side: target short side in pixels, ``>= 1``.

    Returns:
        ``(new_height, new_width)``, e.g. ``(256, 340, 112) -> (112, 148)``.

    Raises:
        ValueError: a non-positive size.
    """
    if height < 1 or width < 1 or short_side < 1:
        raise ValueError(f"sizes must be >= 1, got height={height}, width={width}, short_side={short_side}")
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(1, int(width * scale))
    return max(1, int(height * scale)), short_side


def preprocess_frame(bgr: np.ndarray, short_side: int = 112, lut: np.ndarray | None = None) -> np.ndarray:
    """One SnapPix preprocessing step on a decoded frame: sRGB->linear LUT, short-side resize, grey.

    Order as in SnapPix (DAC'25, §7.1): ``cv2.LUT`` with :func:`srgb_to_linear_lut` per BGR channel,
    then ``cv2.resize`` (INTER_LINEAR) to :func:`output_size`, then ``cv2.COLOR_BGR2GRAY``.

    Args:
        bgr: ``(H, W, 3)`` uint8 frame in OpenCV's BGR order, sRGB-encoded values 0-255.
        short_side: target short side in pixels (SnapPix: 112).
        lut: optional ``(256,)`` uint8 table replacing the sRGB one (e.g. the identity for tests).

    Returns:
        ``(h, w)`` uint8 linear-intensity grey frame, 0-255, with ``(h, w) = output_size(H, W, short_side)``;
        e.g. ``(256, 340, 3) -> (112, 148)``.

    Raises:
        TypeError: ``bgr`` is not a uint8 numpy array.
        ValueError: ``bgr`` is not ``(H, W, 3)``.
    """
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8:
        raise TypeError(f"expected a uint8 numpy array, got {type(bgr).__name__} {getattr(bgr, 'dtype', '')}")
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected a (H, W, 3) BGR frame, got shape {bgr.shape}")
    table = _LUT if lut is None else lut
    linear = cv2.LUT(bgr, table)
    new_h, new_w = output_size(bgr.shape[0], bgr.shape[1], short_side)
    if (new_h, new_w) != linear.shape[:2]:
        linear = cv2.resize(linear, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(linear, cv2.COLOR_BGR2GRAY)
