"""Second-order gaze dynamics of G-Eymol, integrated with :func:`scipy.integrate.odeint` over each frame.

The gaze ``y = (row, col)`` in working-resolution pixels obeys (Zanca, Melacci, Gori, IEEE TPAMI 2019,
https://ieeexplore.ieee.org/document/8730418; time unit: one frame)

    y'' = F(y) - dissipation * y'

with ``F`` the force map of :mod:`snappix.scanpaths.field`. As in the released code, one frame is
integrated on the time grid ``t, t + 0.1, ..., t + 0.9`` (``np.arange(t, t + 1, 0.1)``: the state moves
0.9 time units per frame) with ``odeint`` (LSODA), ``rtol = atol = 0.1`` and at most 100 internal steps
per output interval; the state at the last grid point starts the next frame.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from scipy.integrate import odeint

from .field import sample_force

__all__ = ["initial_state", "frame_times", "integrate_frame", "force_lookup"]


def initial_state(height: int, width: int, rng: np.random.Generator, spread: float = 0.17) -> np.ndarray:
    """Random start: position near the centre, random velocity.

    Args:
        height, width: working frame size in pixels.
        rng: the seeded generator (draws 6 numbers).
        spread: the position is the centre ``(h // 2, w // 2)`` plus integers in
            ``[-r, r]``, ``r = int(min(h, w) * spread)``.

    Returns:
        float64 ``(4,)``: ``(row, col, row velocity, col velocity)``; each speed in [0.6, 1.4] pixels per
        frame with a random sign.
    """
    r = int(min(height, width) * spread)
    row = height // 2 + int(rng.integers(-r, r, endpoint=True))
    col = width // 2 + int(rng.integers(-r, r, endpoint=True))
    vr = 2.0 * rng.uniform(0.3, 0.7) * (-1.0) ** int(rng.integers(0, 2))
    vc = 2.0 * rng.uniform(0.3, 0.7) * (-1.0) ** int(rng.integers(0, 2))
    return np.array([row, col, vr, vc], dtype=np.float64)


def frame_times(t: int, step: float = 0.1, points: int = 10) -> np.ndarray:
    """The output grid of frame ``t``: ``t + step * k`` for ``k < points`` (``np.arange(t, t + 1, 0.1)``)."""
    return t + step * np.arange(points)


def integrate_frame(accel: Callable[[float, float], tuple[float, float]], y0: np.ndarray, t: int,
                    dissipation: float = 1.5, step: float = 0.1, points: int = 10, rtol: float = 0.1,
                    atol: float = 0.1, mxstep: int = 100) -> tuple[np.ndarray, int]:
    """Advance the state over frame ``t``.

    Args:
        accel: ``(row, col) -> (row accel, col accel)``, the field's pull at a gaze position, e.g.
            ``functools.partial(sample_force, force_map)`` (see :func:`force_lookup`).
        y0: float64 ``(4,)`` state ``(row, col, row velocity, col velocity)``.
        t: frame index (start of the time grid of :func:`frame_times`).

    Returns:
        ``(y, evaluations)``: the float64 ``(4,)`` state at the last grid point and how many times the
        right-hand side was evaluated. Solver warnings (excess work) are silenced: ``odeint`` then
        returns its last estimate, as the released code accepts.
    """
    count = [0]

    def rhs(y, _t):
        count[0] += 1
        ar, ac = accel(y[0], y[1])
        return [y[2], y[3], ar - dissipation * y[2], ac - dissipation * y[3]]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = odeint(rhs, y0, frame_times(t, step, points), rtol=rtol, atol=atol, mxstep=mxstep)
    return np.asarray(out[-1], np.float64), count[0]


def force_lookup(force: np.ndarray, lookup: str = "floor") -> Callable[[float, float], tuple[float, float]]:
    """``accel`` for :func:`integrate_frame` reading a ``(2, h, w)`` force map with ``lookup``."""
    def accel(row: float, col: float) -> tuple[float, float]:
        return sample_force(force, row, col, lookup)
    return accel
