"""Per-frame feature channels of G-Eymol and their gradient "mass".

G-Eymol (Zanca, Melacci, Gori, "Gravitational Laws of Focus of Attention", IEEE TPAMI 2019,
https://ieeexplore.ieee.org/document/8730418) moves the gaze in a field whose masses are the edges of a
few low-level feature maps. Per frame (``docs/methods/saccade.md``, "Scanpaths (G-Eymol)"):

* the frame (BGR, as OpenCV decodes it) is resized so that its longer side is ``long_side`` (224) with
  bicubic interpolation (:func:`working_size`, :func:`resize_frame`);
* 8 channels (:func:`feature_maps`): B, G, R and intensity in [0, 1], and 4 Gabor orientation maps
  (21 x 21, sigma 8, lambda 10, gamma 0.5, psi 0, at 0, 45, 90 and 135 degrees) of the intensity. As the
  released G-Eymol code does, the Gabor responses are stored as 8-bit integers: rounded, negatives
  clipped to 0;
* optional motion channel (:func:`motion_channel`): the magnitude of the Farneback optical flow from the
  previous frame, in working-resolution pixels per frame;
* the mass of a channel (:func:`gradient_mass`) is its Sobel (5 x 5) gradient magnitude; the motion
  channel's mass is the flow magnitude itself. Both are multiplied by ``1 - IOR`` by the caller.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["NUM_BASE_CHANNELS", "GABOR_THETAS", "working_size", "resize_frame", "gabor_kernels", "feature_maps",
           "motion_channel", "gradient_mass", "to_grey"]

#: B, G, R, intensity and 4 Gabor orientations
NUM_BASE_CHANNELS = 8
#: orientations of the Gabor channels, radians (0, 45, 90, 135 degrees)
GABOR_THETAS = tuple(float(np.pi * k / 4) for k in range(4))
_GABOR_SIZE, _GABOR_SIGMA, _GABOR_LAMBDA, _GABOR_GAMMA = 21, 8.0, 10.0, 0.5


def working_size(height: int, width: int, long_side: int = 224) -> tuple[int, int]:
    """``(h, w)`` of a ``height x width`` frame resized so that its longer side is ``long_side`` pixels.

    The shorter side is ``int(long_side / longer * shorter)`` (truncated, as G-Eymol's code does).

    Raises:
        ValueError: a side or ``long_side`` is not positive, or the shorter side would be 0 pixels.
    """
    if height <= 0 or width <= 0 or long_side <= 0:
        raise ValueError(f"frame size and long_side must be positive, got {height}x{width}, {long_side}")
    if height > width:
        h, w = long_side, int(long_side / height * width)
    else:
        h, w = int(long_side / width * height), long_side
    if h < 1 or w < 1:
        raise ValueError(f"frame {height}x{width} is too elongated for long side {long_side}")
    return h, w


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a uint8 ``(H, W, 3)`` frame to ``size = (h, w)``; returned unchanged if already so."""
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_CUBIC)


def gabor_kernels() -> list[np.ndarray]:
    """The 4 float32 ``(21, 21)`` Gabor kernels of :data:`GABOR_THETAS` (``cv2.getGaborKernel``, psi 0)."""
    size = (_GABOR_SIZE, _GABOR_SIZE)
    return [cv2.getGaborKernel(size, _GABOR_SIGMA, theta, _GABOR_LAMBDA, _GABOR_GAMMA, 0, ktype=cv2.CV_32F)
            for theta in GABOR_THETAS]


_KERNELS = gabor_kernels()


def feature_maps(frame_bgr: np.ndarray) -> list[np.ndarray]:
    """The 8 feature channels of one frame.

    Args:
        frame_bgr: uint8 ``(h, w, 3)`` frame in BGR order, already at the working resolution.

    Returns:
        a list of 8 ``(h, w)`` maps: B, G, R, intensity as float32 in [0, 1], then the 4 Gabor
        orientation maps as uint8 (the rounded response, negatives clipped to 0).

    Raises:
        ValueError: ``frame_bgr`` is not uint8 ``(h, w, 3)``.
    """
    if frame_bgr.dtype != np.uint8 or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
        raise ValueError(f"expected a uint8 (h, w, 3) BGR frame, got {frame_bgr.dtype} {frame_bgr.shape}")
    src = frame_bgr.astype(np.float32) * np.float32(1.0 / 255.0)
    blue, green, red = cv2.split(src)
    grey = cv2.cvtColor(src, cv2.COLOR_BGR2GRAY)
    orient = [cv2.filter2D(grey, cv2.CV_8U, k) for k in _KERNELS]
    return [blue, green, red, grey, *orient]


def to_grey(frame_bgr: np.ndarray) -> np.ndarray:
    """uint8 ``(h, w)`` grey image of a uint8 BGR frame (the input of :func:`motion_channel`)."""
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)


def motion_channel(prev_grey: np.ndarray | None, grey: np.ndarray) -> np.ndarray:
    """Magnitude of the dense Farneback optical flow from ``prev_grey`` to ``grey``.

    Args:
        prev_grey: uint8 ``(h, w)`` previous frame, or ``None`` for the first frame (no motion).
        grey: uint8 ``(h, w)`` current frame.

    Returns:
        float64 ``(h, w)``, pixels per frame (>= 0); zeros when ``prev_grey`` is None.
    """
    if prev_grey is None:
        return np.zeros(grey.shape, np.float64)
    flow = cv2.calcOpticalFlowFarneback(prev_grey, grey, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return np.hypot(flow[..., 0], flow[..., 1]).astype(np.float64)


def gradient_mass(channel: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Sobel (5 x 5) gradient magnitude ``sqrt(gx^2 + gy^2)`` of one feature map.

    Args:
        channel: ``(h, w)`` float32 or uint8 map (from :func:`feature_maps`).
        dtype: ``float64`` (default) or ``float32``, the type the derivatives and the magnitude are
            computed in (float32: about 1e-7 of the value apart, and faster). Both are deterministic.

    Returns:
        ``(h, w)`` of ``dtype``, >= 0, in the map's units per pixel (times the Sobel kernel's gain).
    """
    if np.dtype(dtype) != np.float32:
        return cv2.magnitude(cv2.Sobel(channel, cv2.CV_64F, 1, 0, ksize=5),
                             cv2.Sobel(channel, cv2.CV_64F, 0, 1, ksize=5))
    gx = cv2.Sobel(channel, cv2.CV_32F, 1, 0, ksize=5)
    gy = cv2.Sobel(channel, cv2.CV_32F, 0, 1, ksize=5)
    # not cv2.magnitude: its float32 SIMD path rounds differently with the buffers' alignment (run to run)
    gx *= gx
    gy *= gy
    gx += gy
    return np.sqrt(gx, out=gx)
