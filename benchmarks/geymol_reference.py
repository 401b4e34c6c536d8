"""Baseline for ``bench_scanpaths.py``: G-Eymol's attention field evaluated the way the released code does.

A straightforward port of the per-evaluation approach of G-Eymol's released ``eymol.py`` (Zanca, Melacci,
Gori, IEEE TPAMI 2019, https://ieeexplore.ieee.org/document/8730418), written for this benchmark: at
*every* right-hand-side evaluation of the ODE it

1. recomputes the Sobel (5 x 5) gradient magnitude of all 8 feature maps and gates it by ``1 - IOR``;
2. pads each channel with zeros and crops the ``n x n`` window centred on the gaze pixel (the position
   clamped into the frame and truncated to integers);
3. divides each crop by its maximum and sums it against the kernel built element by element.

The order of the work follows the released code (all 8 channels, then all 8 crops, then the sums), so
its memory traffic is the same: the 8 padded copies are alive at once, and they are allocated anew at
every evaluation. Computing one channel at a time instead is about 3x faster on the same algorithm (see
``docs/methods/saccade.md``).

Everything around the field is shared with :mod:`snappix.scanpaths` (feature channels, start state, ODE
time grid and tolerances, the per-frame clamp, IOR updates), so the two gaze paths differ only by how
the field is computed (and by float rounding). Not part of the library: only the benchmark imports it.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
from scipy.integrate import odeint

from snappix.scanpaths.dynamics import frame_times, initial_state
from snappix.scanpaths.features import feature_maps, resize_frame, working_size
from snappix.scanpaths.field import window_size
from snappix.scanpaths.geymol import GEymolParams
from snappix.scanpaths.ior import clamp_inside, ior_period, update_ior

__all__ = ["loop_kernel", "ReferenceGEymol", "reference_gaze"]


def loop_kernel(n: int) -> np.ndarray:
    """``(2, n, n)`` kernel ``(n // 10 + 1) * v / (|v|^2 + n // 10)`` filled one element at a time."""
    k = np.zeros((2, n, n))
    c = n // 2
    for i in range(n):
        for j in range(n):
            if i == c and j == c:
                continue
            denom = float((i - c) ** 2 + (j - c) ** 2 + n // 10)
            k[0, i, j] = (n // 10 + 1) * float(i - c) / denom
            k[1, i, j] = (n // 10 + 1) * float(j - c) / denom
    return k


def _window(channel: np.ndarray, row: float, col: float, n: int) -> np.ndarray:
    """The ``n x n`` crop of ``channel`` (zero padded) centred on the clamped, truncated gaze pixel."""
    h, w = channel.shape
    d = n // 2
    r = 0 if row < 0 else h - 1 if row >= h else row
    c = 0 if col < 0 else w - 1 if col >= w else col
    r, c = int(r) + d, int(c) + d
    padded = cv2.copyMakeBorder(channel, d, d, d, d, cv2.BORDER_CONSTANT, value=0)
    return padded[r - d:r + d + 1, c - d:c + d + 1]


def _rhs(y, _t, maps, ior, kernel, alphas, dissipation, counter):
    """The right-hand side as the released code structures it: all gated gradient maps first, then all
    window crops (each keeps its padded copy alive), then the weighted sums."""
    counter[0] += 1
    channels = []
    for fmap in maps:
        grad = np.dstack((cv2.Sobel(fmap, cv2.CV_64F, 1, 0, ksize=5), cv2.Sobel(fmap, cv2.CV_64F, 0, 1, ksize=5)))
        channel = np.sqrt(grad[:, :, 0] ** 2 + grad[:, :, 1] ** 2)
        channel *= 1 - ior
        channels.append(channel)
    crops = []
    for channel in channels:
        crop = _window(channel, y[0], y[1], kernel.shape[1])
        if crop.max() != 0:
            crop /= crop.max()
        crops.append(crop)
    pulls = [alpha * np.array([(kernel[0] * crop).sum(), (kernel[1] * crop).sum()])
             for alpha, crop in zip(alphas, crops)]
    return [y[2], y[3], sum(p[0] for p in pulls) - dissipation * y[2], sum(p[1] for p in pulls) - dissipation * y[3]]


class ReferenceGEymol:
    """Per-evaluation G-Eymol (8 base channels; no motion channel, ``floor`` lookup only).

    Args and the meaning of :meth:`step` as :class:`snappix.scanpaths.geymol.GEymol`.
    """

    def __init__(self, height: int, width: int, fps: float = 25.0, params: GEymolParams | None = None,
                 seed=0):
        self.params = params or GEymolParams()
        if self.params.motion or self.params.lookup != "floor":
            raise ValueError("the reference port has no motion channel and reads the field at the gaze pixel")
        self.height, self.width = height, width
        self.period = ior_period(fps, self.params.saccades_per_second)
        self.kernel = loop_kernel(window_size(height, width))
        self.alphas = self.params.alphas()
        self.state = initial_state(height, width, np.random.default_rng(seed), self.params.init_spread)
        self.ior = np.zeros((height, width))
        self.t = 0
        self.evaluations = 0

    def step(self, frame_bgr: np.ndarray) -> tuple[int, int]:
        p = self.params
        counter = [0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = odeint(_rhs, self.state, frame_times(self.t, p.step, p.points),
                         args=(feature_maps(frame_bgr), self.ior, self.kernel, self.alphas, p.dissipation, counter),
                         rtol=p.rtol, atol=p.atol, mxstep=p.mxstep)
        self.evaluations += counter[0]
        y = np.asarray(out[-1], np.float64)
        self.t += 1
        row, col = clamp_inside(y[0], y[1], self.height, self.width, p.border)
        y[0], y[1] = row, col
        self.state = y
        if self.t % self.period == 0:
            self.ior = update_ior(self.ior, row, col, p.ior_radius, p.ior_decay)
        return row, col


def reference_gaze(frames, fps: float = 25.0, params: GEymolParams | None = None, seed=0
                   ) -> tuple[np.ndarray, int]:
    """Gaze path of BGR uint8 frames (one size) in working-resolution pixels: ``(float64 (T, 2), evaluations)``."""
    params = params or GEymolParams()
    model, out = None, []
    for frame in frames:
        if model is None:
            model = ReferenceGEymol(*working_size(*frame.shape[:2], params.long_side), fps, params, seed)
        out.append(model.step(resize_frame(frame, (model.height, model.width))))
    return np.asarray(out, np.float64).reshape(-1, 2), (model.evaluations if model else 0)
